"""scripts/ensure-system-packages.sh, the one path by which `make test` and .ci/run install servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ensure-system-packages.sh"
BASH = shutil.which("bash")


def fake_command(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """A PATH holding only fakes of dpkg-query, id, apt-get and python3 (plus a few real tools).

    `installed` lists the packages dpkg reports as installed; apt-get appends its arguments to
    `apt_calls`. Nothing on the real machine is installed or looked at.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("grep", "mktemp", "rm", "cat", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    apt_calls = tmp_path / "apt-calls"
    installed = tmp_path / "installed"
    fake_command(bin_dir, "dpkg-query", f'grep -qx "${{@: -1}}" {installed} && printf "install ok installed"'
                                         ' || printf "deinstall ok config-files"')
    fake_command(bin_dir, "apt-get", f'echo "$*" >> {apt_calls}')
    fake_command(bin_dir, "python3", "exit 0")

    class Machine:
        def __init__(self) -> None:
            self.apt_calls = apt_calls
            self.bin_dir = bin_dir

        def have(self, *packages: str) -> None:
            installed.write_text("".join(f"{p}\n" for p in packages))

        def user(self, uid: int) -> None:
            fake_command(bin_dir, "id", f"echo {uid}")

        def run(self) -> subprocess.CompletedProcess:
            return subprocess.run([BASH, str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True,
                                  text=True, timeout=30)

        def apt(self) -> list[str]:
            return apt_calls.read_text().splitlines() if apt_calls.exists() else []

    return Machine()


EVERYTHING = ("make", "postgresql", "memcached", "nginx", "libnginx-mod-http-js", "chromium",
              "buildah", "debootstrap")


def test_nothing_is_installed_when_every_package_is_there(machine):
    machine.have(*EVERYTHING)
    machine.user(1000)

    result = machine.run()

    assert result.returncode == 0, result.stderr
    assert machine.apt() == []


def test_as_root_a_missing_package_is_installed_after_an_update(machine):
    machine.have("make", "postgresql", "chromium")
    machine.user(0)

    result = machine.run()

    assert result.returncode == 0, result.stderr
    # buildah and debootstrap: the image test builds and runs the image with them.
    assert machine.apt() == [
        "update -qq", "install -y -qq --no-install-recommends memcached nginx libnginx-mod-http-js"
        " buildah debootstrap"]


def test_without_root_a_passwordless_sudo_installs_them(machine):
    machine.have("make", "postgresql", "memcached", "chromium", "buildah", "debootstrap")
    machine.user(1000)
    fake_command(machine.bin_dir, "sudo", '[ "$1" = -n ] && shift; [ "$1" = true ] && exit 0; echo sudo >> '
                 f'{machine.apt_calls}; exec "$@"')

    result = machine.run()

    assert result.returncode == 0, result.stderr
    assert machine.apt() == ["sudo", "update -qq",
                            "install -y -qq --no-install-recommends nginx libnginx-mod-http-js"]


def test_without_root_or_sudo_it_fails_at_once_with_the_one_command_to_run(machine):
    machine.have("make", "postgresql", "chromium", "buildah", "debootstrap")
    machine.user(1000)

    result = machine.run()

    assert result.returncode == 1
    assert machine.apt() == []
    command = re.search(r"^  (sudo sh -c '.*')$", result.stderr, re.M).group(1)
    assert "apt-get update" in command and command.endswith(
        "--no-install-recommends memcached nginx libnginx-mod-http-js'")


def test_on_a_system_without_dpkg_it_leaves_the_check_to_the_tests(machine):
    (machine.bin_dir / "dpkg-query").unlink()
    machine.user(0)

    result = machine.run()

    assert result.returncode == 0
    assert "not a Debian system" in result.stderr
    assert machine.apt() == []


def test_make_test_and_ci_share_the_script():
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()

    assert re.search(r"^system-deps:\n\t.*scripts/ensure-system-packages\.sh$", makefile, re.M)
    assert re.search(r"^test: system-deps ", makefile, re.M)
    assert re.search(r"^scripts/ensure-system-packages\.sh$", ci, re.M)
    assert re.search(r"^run test$", ci, re.M) and re.search(r"^run test-lowest$", ci, re.M)
    assert os.access(SCRIPT, os.X_OK)
