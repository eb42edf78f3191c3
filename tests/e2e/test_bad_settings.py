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
    assert_stopped_with_one_line(run(command, **{name: value}), name)


@pytest.mark.parametrize("name, value", [
    ("QUOTE_MAX_AGE_SECONDS", "100000000000000"),  # was a traceback (OverflowError)
    ("QUOTE_MAX_AGE_SECONDS", "100000000000"),  # was accepted, and every request a 500
    ("CACHE_TTL_SECONDS", "2592001"),  # was accepted, and memcached read it as a 1970 date
    ("RATE_LIMIT", "0/minute"),  # was accepted, and refused every request
])
def test_a_value_beyond_what_works_stops_start_up_with_one_line_naming_the_variable(name, value):
    assert_stopped_with_one_line(run([sys.executable, "-c", "import wsgi"], **{name: value}), name)


def assert_stopped_with_one_line(result: subprocess.CompletedProcess, name: str) -> None:
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"coinquote: configuration error: {name}"), lines
    assert SECRET not in lines[0]
