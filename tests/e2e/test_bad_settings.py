"""A bad setting stops the real commands with one line naming the variable, never a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, base_env

SECRET = "S3cret"
FLASK = str(Path(sys.executable).parent / "flask")


def run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=base_env(**env), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [[FLASK, "--app", "wsgi", "db", "upgrade"], [sys.executable, "-c", "import wsgi"]],
                         ids=["flask-db-upgrade", "import-wsgi"])
@pytest.mark.parametrize(
    "name, value",
    [
        ("DATABASE_URL", f"postgresql://app:{SECRET}/db"),
        ("DATABASE_URL", f"postgresql://app:{SECRET}@db:99999/coinquote"),
        ("CMC_BASE_URL", "http://[::1"),
        ("CMC_BASE_URL", f"http://app:{SECRET}@cmc.example:99999"),
        ("MEMCACHED_SERVERS", "127.0.0.1:99999"),
    ],
)
def test_a_bad_url_or_port_stops_the_command_with_one_line_naming_the_variable(command, name, value):
    result = run(command, **{name: value})

    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"coinquote: configuration error: {name}"), lines
    assert SECRET not in lines[0]
