#!/usr/bin/env bash
# Install the Debian packages the test tiers need and a fresh machine lacks (make test and .ci/run).
#
# The tiers start throwaway PostgreSQL, memcached and nginx processes themselves and drive Debian's
# Chromium through Playwright (which downloads no browser): they need the programs, not running
# services. The image test (tests/e2e/test_image.py) builds and runs the image with buildah (no
# daemon) on a base it makes with debootstrap. As root this installs what is missing; otherwise
# through sudo when it needs no password; otherwise it stops at once and prints the one command
# to run.
set -euo pipefail

if ! command -v dpkg-query >/dev/null; then
  # Not Debian: the tests themselves say which program is missing.
  echo "system-deps: not a Debian system; PostgreSQL, memcached, nginx, Chromium, buildah and" \
    "debootstrap must be installed" >&2
  exit 0
fi

# libnginx-mod-http-js: njs, which deploy/nginx.conf loads for the edge (deploy/coinquote-edge.js);
# buildah and debootstrap: the image test builds and runs the image with them.
packages=(make postgresql memcached nginx libnginx-mod-http-js chromium buildah debootstrap)
# Debian's python3 has no venv (for .venv) without python3-venv.
"${PYTHON:-python3}" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

install="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  as_root=(sh -c)
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n sh -c)
else
  echo "system-deps: missing Debian packages: ${missing[*]}. Install them with:" >&2
  echo "  sudo sh -c '$install'" >&2
  exit 1
fi

echo "system-deps: installing ${missing[*]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${as_root[@]}" "$install" >"$log" 2>&1; then
  cat "$log" >&2
  echo "system-deps: installing ${missing[*]} failed (output above)" >&2
  exit 1
fi
