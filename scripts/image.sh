#!/usr/bin/env bash
# Build the coinquote image without or with Docker (`make image`, tests/e2e/test_image.py).
#
#   scripts/image.sh build [TAG [CONTEXT]]   build CONTEXT (default: this clone) as TAG
#                                            (default: coinquote:latest)
#   scripts/image.sh stand-in                make the stand-in base once (cached); print its name
#
# With a Docker daemon that answers, `build` is `docker build`. Otherwise it is Debian's buildah
# (no daemon, build isolation chroot; as root): on the official base when that can be pulled,
# else on the stand-in. IMAGE_BASE=official|stand-in forces one; IMAGE_TOOL=buildah skips
# Docker. The stand-in replaces python:3.11-slim-bookworm with Debian's own Python (README.md >
# Deploy says how it differs). It is made once per recipe (this file's make_rootfs, PACKAGES,
# CONFIG and the machine's CA bundle) and kept in $COINQUOTE_CACHE (default ~/.cache/coinquote)
# and in buildah's storage.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OFFICIAL=docker.io/library/python:3.11-slim-bookworm
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# pip inside the build reaches the package index through this machine's network only with the
# machine's CA bundle (a proxy may sign with its own authority).
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
CACHE=${COINQUOTE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coinquote}
# The stand-in's image configuration: the official image's PATH and LANG, and its command.
CONFIG=(--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        --env LANG=C.UTF-8 --cmd python3)

say() { echo "image: $*" >&2; }

need() {
  command -v "$1" >/dev/null || {
    say "$1 is missing: run scripts/ensure-system-packages.sh (or apt-get install $1)"
    exit 1
  }
}

make_rootfs() {  # TARBALL: a Debian 12 root file system with Python 3.11, as a tar archive
  local dir
  dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  # At exit the work directory goes, and anything half-made (never into a mount debootstrap
  # left behind after a failure).
  trap "rm -rf --one-file-system $(printf %q "$dir") $(printf %q "$1.partial")" EXIT
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$dir" "$MIRROR" >&2
  cp "$CA_BUNDLE" "$dir/etc/ssl/certs/ca-certificates.crt"
  # Like the official image: no package lists or downloaded packages, no device nodes.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/dev/*
  tar --numeric-owner -C "$dir" -cf "$1.partial" .
  mv "$1.partial" "$1"
}

stand_in() {
  need debootstrap
  need buildah
  if [ "$(id -u)" -ne 0 ]; then
    say "debootstrap and buildah's chroot isolation need root; run: sudo $0 stand-in"
    exit 1
  fi
  mkdir -p "$CACHE"
  local key name tarball ctr
  key=$({ declare -f make_rootfs; echo "$PACKAGES ${CONFIG[*]}"; cat "$CA_BUNDLE"; } \
        | sha256sum | cut -c1-16)
  name=localhost/coinquote-stand-in:$key
  tarball=$CACHE/stand-in-$key.tar
  exec 9>"$CACHE/stand-in.lock"
  flock 9  # one maker at a time; the others then find its result
  if ! buildah inspect --type image "$name" >/dev/null 2>&1; then
    if [ ! -s "$tarball" ]; then
      say "making the stand-in base $name (debootstrap, once per recipe)"
      make_rootfs "$tarball"
    fi
    ctr=$(buildah from --quiet scratch)
    buildah add --quiet "$ctr" "$tarball" / >/dev/null
    buildah config "${CONFIG[@]}" "$ctr"
    buildah commit --quiet --rm --format docker "$ctr" "$name" >/dev/null
    # Stand-ins of earlier recipes are not used again.
    find "$CACHE" -maxdepth 1 -name 'stand-in-*.tar' ! -name "stand-in-$key.tar" -delete
    buildah images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/coinquote-stand-in:' \
      | grep -v ":$key\$" | xargs -r buildah rmi >/dev/null || true
  fi
  echo "$name"
}

pull() {  # the official base, or a failure within a minute (a registry may be unreachable)
  timeout 60 buildah pull --quiet --retry 0 "$OFFICIAL" >/dev/null
}

build() {
  local tag=${1:-coinquote:latest} context=${2:-$ROOT} base=$OFFICIAL
  if [ "${IMAGE_TOOL:-}" != buildah ] && command -v docker >/dev/null && docker info >/dev/null 2>&1
  then
    docker build --tag "$tag" "$context"
    return
  fi
  need buildah
  if [ "$(id -u)" -ne 0 ]; then
    say "building with buildah needs root here (its chroot isolation); run: sudo $0 build $*"
    exit 1
  fi
  case ${IMAGE_BASE:-auto} in
    official) pull ;;
    stand-in) base=$(stand_in) ;;
    auto)
      if ! pull 2>/dev/null; then
        say "$OFFICIAL cannot be pulled here: building on the Debian stand-in (README > Deploy)"
        base=$(stand_in)
      fi ;;
    *) say "IMAGE_BASE must be official, stand-in or auto"; exit 2 ;;
  esac
  # --format docker: the OCI format has no HEALTHCHECK, and buildah would drop it.
  buildah bud --isolation chroot --format docker --pull=never --build-arg "PYTHON_IMAGE=$base" \
    --tag "$tag" "$context"
}

case ${1:-} in
  build) shift; build "$@" ;;
  stand-in) stand_in ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
