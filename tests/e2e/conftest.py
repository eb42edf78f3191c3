"""End-to-end tier: the real processes (gunicorn with gunicorn.conf.py, the fake CoinMarketCap)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
import requests
from pymemcache.client.base import Client as MemcacheClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from src.adapters.budget.notes import budget_namespace
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


def wait_for(condition: Callable[[], object], seconds: float, every: float = 0.2) -> object:
    """`condition()` once it is truthy, polled every `every` seconds until `seconds` have
    passed; then its last value. A timing test waits for its condition with a deadline, never
    a fixed sleep at the edge of one (a shared 2-core machine can be late by seconds)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (found := condition()):
            return found
        time.sleep(every)
    return condition()


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
    proc = start_fake_cmc(e2e_dir / "fake_cmc.log")
    yield proc
    stop(proc.process)


@pytest.fixture(scope="session")
def e2e_database_url(database_url) -> str:
    """A database of its own, created empty so that `flask db upgrade` builds it from nothing."""
    return new_database(database_url, "coinquote_e2e")


def new_database(database_url: str, prefix: str) -> str:
    """The URL of a new empty database named `<prefix>_<random>` on `database_url`'s server."""
    url = make_url(database_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
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
    env = service_env(fake_cmc_process.url, e2e_database_url, memcached_servers)
    migrated = migrate(env)
    assert migrated.returncode == 0, migrated.stderr
    proc = start_gunicorn(env, e2e_dir / "gunicorn.log")
    proc.extra["migrate_output"] = migrated.stdout + migrated.stderr
    yield proc
    stop(proc.process)


def service_env(fake_cmc_url: str, database_url: str, memcached_servers: list[str]) -> dict[str, str]:
    return base_env(CMC_API_KEY=E2E_KEY, CMC_BASE_URL=fake_cmc_url, DATABASE_URL=database_url,
                    MEMCACHED_SERVERS=",".join(memcached_servers))


@pytest.fixture(scope="session")
def replicas(e2e_dir, service, fake_cmc_process, e2e_database_url, memcached_servers) -> Iterator[list[Process]]:
    """Two more gunicorn instances (one worker each) sharing the database and memcached."""
    env = service_env(fake_cmc_process.url, e2e_database_url, memcached_servers)
    started = [start_gunicorn(env, e2e_dir / f"replica-{i}.log", workers=1) for i in (1, 2)]
    yield started
    for proc in started:
        stop(proc.process)


def render_namespace(env: dict[str, str] | None = None) -> str:
    """deploy/coinquote-namespace.conf.template as the nginx image renders it (envsubst of the
    variables set), from docker-compose.yml's values for nginx: its defaults, then `env`."""
    values = {"CACHE_NAMESPACE": "coinquote", "BASE_CURRENCY": "USD", **(env or {})}
    text = (ROOT / "deploy" / "coinquote-namespace.conf.template").read_text()
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def render_nginx_conf(upstreams: list[str], port: int, workdir: Path,
                      memcached: list[str] | None = None, env: dict[str, str] | None = None) -> str:
    """deploy/nginx.conf with only its `# e2e:` lines pointed at local ports and files.

    `memcached`: the servers of the fast path (none: a closed port, so every request reaches
    the app as before the fast path existed). `env`: CACHE_NAMESPACE and BASE_CURRENCY, as
    docker-compose.yml would give the nginx image (render_namespace)."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    out = []
    for line in text.splitlines():
        if "# e2e:" not in line or line.lstrip().startswith("#"):
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        what = line.split("# e2e:")[1].strip()
        directive = line.split()[0]
        if what == "upstream":
            out += [f"{indent}server {u} max_fails=3 fail_timeout=10s;" for u in upstreams]
        elif what == "memcached":
            out += [f"{indent}server {m};" for m in (memcached or ["127.0.0.1:9"])]
        elif what == "listen":
            out.append(f"{indent}listen 127.0.0.1:{port};")
        elif what == "access_log":
            out.append(f"{indent}access_log {workdir}/access.log coinquote;")
        elif what == "error_log":
            out.append(f"{indent}error_log {workdir}/error.log warn;")
        elif what == "pid":
            out.append(f"{indent}pid {workdir}/nginx.pid;")
        elif what == "js":
            out.append(f"{indent}js_import coinquote from {ROOT / 'deploy' / 'coinquote-edge.js'};")
        elif what == "namespace":
            (workdir / "coinquote-namespace.conf").write_text(render_namespace(env))
            out.append(f"{indent}include {workdir}/coinquote-namespace.conf;")
        elif what == "temp":
            out.append(f"{indent}{directive} {workdir}/{directive};")
        else:
            raise AssertionError(f"unknown e2e marker {what!r}")
    return "\n".join(out) + "\n"


def start_nginx(upstreams: list[str], workdir: Path, edit: Callable[[str], str] | None = None,
                memcached: list[str] | None = None, env: dict[str, str] | None = None) -> Process:
    """Real nginx with deploy/nginx.conf (rendered, then passed through `edit`) in front of
    `upstreams`; `env`: CACHE_NAMESPACE and BASE_CURRENCY for its namespace (render_namespace)."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.fail("nginx is needed for the reverse-proxy tests: make system-deps", pytrace=False)
    workdir.mkdir()
    workdir.chmod(0o777)  # nginx workers run as an unprivileged user and write temp files here
    port = free_port()
    conf = workdir / "nginx.conf"
    text = render_nginx_conf(upstreams, port, workdir, memcached, env)
    conf.write_text(edit(text) if edit else text)
    checked = subprocess.run([binary, "-t", "-c", str(conf), "-e", str(workdir / "startup.log")],
                             capture_output=True, text=True)
    if "ngx_http_js_module" in checked.stderr:
        pytest.fail("nginx's njs module is needed for the edge: make system-deps"
                    " (Debian: libnginx-mod-http-js)", pytrace=False)
    assert checked.returncode == 0, checked.stderr
    proc = spawn([binary, "-c", str(conf), "-e", str(workdir / "startup.log"), "-g", "daemon off;"],
                 base_env(), port, workdir / "stdout.log")
    proc.extra["access_log"] = workdir / "access.log"
    proc.extra["error_log"] = workdir / "error.log"
    return proc


@pytest.fixture(scope="session")
def nginx(e2e_dir, replicas) -> Iterator[Process]:
    """Real nginx with deploy/nginx.conf in front of the two replicas."""
    proc = start_nginx([r.url.removeprefix("http://") for r in replicas], e2e_dir / "nginx")
    yield proc
    stop(proc.process, signal.SIGQUIT)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@dataclass
class FaultyStack:
    """A gunicorn service with its own fake CoinMarketCap, for scripting upstream faults."""

    service: Process
    fake: Process
    memcached_servers: list[str] = field(default_factory=list)
    database_url: str = ""

    def script(self, http: requests.Session, **failure) -> None:
        http.post(self.fake.url + "/__fake__/failures", json=failure).raise_for_status()

    def calls(self, http: requests.Session) -> list[dict]:
        return [c for c in http.get(self.fake.url + "/__fake__/calls").json()["calls"]
                if c["path"].endswith("quotes/latest")]

    def reset(self, http: requests.Session) -> None:
        """A clean upstream, and no memory of it: the cache, and the credit governor's counts
        and CoinMarketCap's limit verdicts (a scripted 1008/1009/1010), which it keeps in the
        database for every process."""
        http.post(self.fake.url + "/__fake__/reset").raise_for_status()
        for server in self.memcached_servers:
            host, _, port = server.rpartition(":")
            client = MemcacheClient((host, int(port)), connect_timeout=1, timeout=1)
            client.flush_all(noreply=False)
            client.close()
        if self.database_url:
            engine = create_engine(self.database_url)
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM budget_counters WHERE name LIKE :ours"),
                             {"ours": f"%{budget_namespace(self.fake.url, E2E_KEY)}%"})
            engine.dispose()


def start_fake_cmc(log: Path) -> Process:
    port = free_port()
    return spawn([sys.executable, "-m", "tests.fake_cmc", "--port", str(port), "--api-key", E2E_KEY],
                 base_env(), port, log)


@pytest.fixture(scope="session")
def faulty(e2e_dir, e2e_database_url, memcached_servers) -> Iterator[FaultyStack]:
    fake = start_fake_cmc(e2e_dir / "faulty-fake.log")
    env = service_env(fake.url, e2e_database_url, memcached_servers)
    service = start_gunicorn(env, e2e_dir / "faulty-gunicorn.log", workers=1)
    yield FaultyStack(service, fake, memcached_servers, e2e_database_url)
    stop(service.process)
    stop(fake.process)
