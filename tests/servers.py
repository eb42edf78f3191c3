"""Throwaway real servers for the integration and end-to-end tiers: PostgreSQL, memcached.

Each is started on a free loopback port in a temporary directory and stopped afterwards. When
a server binary is missing the tests fail (never skip) with what to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = (
    "{what} is needed by the integration tests and was not found. Install it "
    "(Debian: apt-get install -y {package}), or point {variable} at a running server."
)


class ServerUnavailable(RuntimeError):
    """A server the tests need cannot be had; the message says how to get it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerUnavailable(f"server on port {port} exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerUnavailable(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def eventually(check, timeout: float = 5.0) -> bool:
    """Whether `check()` comes true within `timeout` s (logs and noreply writes land just after
    the answer): a deadline, never a fixed sleep at the edge of one."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _find_binary(name: str, pattern: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(pattern), reverse=True)
    return candidates[0] if candidates else None


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable("running as root, and there is no 'postgres' user to run PostgreSQL") from None
    return ["runuser", "-u", "postgres", "--"]


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Postgres:
    """A PostgreSQL cluster in a temporary directory, trust auth, loopback only, run by pg_ctl."""

    def __init__(self) -> None:
        initdb = _find_binary("initdb", "/usr/lib/postgresql/*/bin/initdb")
        if initdb is None:
            raise ServerUnavailable(INSTALL_HINT.format(what="PostgreSQL", package="postgresql",
                                                        variable="TEST_DATABASE_URL"))
        self.bindir = Path(initdb).resolve().parent
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="coinquote-pg-"))
        self.datadir = self.tmp / "data"
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run([*_as_postgres_user(), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=60)
        if result.returncode != 0:
            raise ServerUnavailable(f"{Path(args[0]).name} failed: {result.stdout[-2000:]}")

    def start(self) -> Postgres:
        if _as_postgres_user():
            shutil.chown(self.tmp, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8")
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server on its data directory (pg_ctl waits until it accepts connections)."""
        options = (f"-p {self.port} -h 127.0.0.1 -k {self.tmp} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.datadir),
                  "-l", str(self.tmp / "postgres.log"), "-o", options)

    def pause(self) -> None:
        """Stop the server, keeping its data (to test outages)."""
        self._run(str(self.bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.datadir))

    def close(self) -> None:
        with contextlib.suppress(ServerUnavailable, subprocess.TimeoutExpired):
            self.pause()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Memcached:
    """A memcached server on a free loopback port."""

    def __init__(self) -> None:
        self.binary = shutil.which("memcached") or _find_binary("memcached", "/usr/bin/memcached")
        if self.binary is None:
            raise ServerUnavailable(INSTALL_HINT.format(what="memcached", package="memcached",
                                                        variable="TEST_MEMCACHED_SERVERS"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.address = f"127.0.0.1:{self.port}"

    def start(self) -> Memcached:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64", *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 10, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    close = stop
