"""End-to-end tier: the real processes (gunicorn with gunicorn.conf.py, the fake CoinMarketCap)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
import requests
from sqlalchemy.engine import make_url

from tests.servers import free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
E2E_KEY = "e2e-secret-key-9b2f6c41d0"


@dataclass
class Process:
    """A started process, its URL and its combined output file."""

    process: subprocess.Popen
    url: str
    log: Path
    extra: dict = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def spawn(args: list[str], env: dict[str, str], port: int, log: Path) -> Process:
    handle = open(log, "wb")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 30, process)
    except Exception:
        stop(process)
        pytest.fail(f"{args[:3]} did not start:\n{log.read_text(errors='replace')[-3000:]}", pytrace=False)
    return Process(process, f"http://127.0.0.1:{port}", log)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CMC_", "DATABASE_", "MEMCACHED_", "GUNICORN_", "CACHE_", "QUOTE_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def fake_cmc_process(e2e_dir) -> Iterator[Process]:
    port = free_port()
    proc = spawn([sys.executable, "-m", "tests.fake_cmc", "--port", str(port), "--api-key", E2E_KEY],
                 base_env(), port, e2e_dir / "fake_cmc.log")
    yield proc
    stop(proc.process)


@pytest.fixture(scope="session")
def e2e_database_url(database_url) -> str:
    """A database of its own, created empty so that `flask db upgrade` builds it from nothing."""
    url = make_url(database_url)
    name = f"coinquote_e2e_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                            dbname=url.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def start_gunicorn(env: dict[str, str], log: Path, workers: int = 2) -> Process:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
    return spawn([sys.executable, "-m", "gunicorn", "wsgi:app"], env, port, log)


@pytest.fixture(scope="session")
def service(e2e_dir, fake_cmc_process, e2e_database_url, memcached_servers) -> Iterator[Process]:
    """coinquote as production runs it: migrations, then gunicorn with gunicorn.conf.py."""
    env = base_env(CMC_API_KEY=E2E_KEY, CMC_BASE_URL=fake_cmc_process.url,
                   DATABASE_URL=e2e_database_url, MEMCACHED_SERVERS=",".join(memcached_servers))
    migrated = migrate(env)
    assert migrated.returncode == 0, migrated.stderr
    proc = start_gunicorn(env, e2e_dir / "gunicorn.log")
    proc.extra["migrate_output"] = migrated.stdout + migrated.stderr
    yield proc
    stop(proc.process)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
