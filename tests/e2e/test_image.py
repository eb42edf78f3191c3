"""The image, built and run (issue 19; README "Deploy").

scripts/image.sh builds it once per session with buildah from the committed files of this clone
(on the Debian stand-in base where the official one cannot be pulled; made once and cached),
and `buildah run` (chroot isolation, host network) runs it against the test tier's PostgreSQL,
memcached and fake CoinMarketCap: its command, its HEALTHCHECK and its user are the image's own.
Needs root and buildah (`make system-deps`); the first run on a machine also debootstraps the
stand-in (one to two and a half minutes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.e2e.conftest import E2E_KEY, ROOT, new_database
from tests.servers import ServerUnavailable, free_port, wait_for_port

# An error in the image's log: gunicorn's "[ERROR]", the app's ERROR/CRITICAL lines, tracebacks.
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make")


def buildah(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"buildah {' '.join(args[:3])} failed:\n{result.stderr[-3000:]}", pytrace=False)
    return result


def committed_tree(destination: Path) -> Path:
    """The files git tracks in this clone, copied to `destination`: the build context a fresh
    clone would give (an untracked file the image needs is missing here too)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0 or not listed.stdout:
        pytest.fail(f"the image is built from the files git tracks, and `git ls-files` in {ROOT} "
                    f"gave none: {listed.stderr.decode(errors='replace')}", pytrace=False)
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("the image test runs buildah with chroot isolation, which needs root",
                    pytrace=False)
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        pytest.fail("buildah and debootstrap are needed for the image test: make system-deps",
                    pytrace=False)
    context = committed_tree(tmp_path_factory.mktemp("image-context"))
    tag = f"localhost/coinquote-test:{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "IMAGE_TOOL": "buildah"}
    built = subprocess.run([str(ROOT / "scripts" / "image.sh"), "build", tag, str(context)],
                           env=env, capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        buildah("rmi", "--force", tag, check=False)
        pytest.fail(f"the image does not build:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}",
                    pytrace=False)
    yield tag
    buildah("rmi", "--force", tag, check=False)


def image_config(tag: str) -> dict:
    inspected = json.loads(buildah("inspect", "--type", "image", tag).stdout)
    return inspected["Docker"]["config"]


def descendants(pid: int) -> list[int]:
    """Every living process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def proc_uids(pid: int) -> tuple[int, ...]:
    status = Path(f"/proc/{pid}/status").read_text()
    return tuple(int(u) for u in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split())


def proc_cmdline(pid: int) -> str:
    """The command line of `pid`; empty once it has gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


@dataclass
class Container:
    """A working container of the image; `run` is `docker run` on the host network."""

    name: str
    env: dict[str, str]
    config: dict

    def command(self, *args: str) -> list[str]:
        flags = [f"--env={key}={value}" for key, value in self.env.items()]
        return ["buildah", "run", "--isolation", "chroot", "--network", "host", *flags,
                self.name, "--", *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout)


@dataclass
class Served:
    container: Container
    process: subprocess.Popen
    url: str
    log: Path
    outputs: list[str]

    def output(self) -> str:
        return "\n".join([*self.outputs, self.log.read_text(errors="replace")])


@pytest.fixture(scope="module")
def container(image, fake_cmc_process, database_url, memcached_servers) -> Iterator[Container]:
    name = f"coinquote-test-{uuid.uuid4().hex[:12]}"
    buildah("from", "--pull=never", "--quiet", "--name", name, image)
    port = free_port()
    env = {"CMC_API_KEY": E2E_KEY, "CMC_BASE_URL": fake_cmc_process.url,
           "DATABASE_URL": new_database(database_url, "coinquote_image"),
           "MEMCACHED_SERVERS": ",".join(memcached_servers),
           "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2"}
    yield Container(name, env, image_config(image))
    buildah("rm", name, check=False)


def gunicorns(pid: int) -> list[int]:
    """The gunicorn processes below `buildah run` (its own helpers, buildah-chroot-*, left out),
    the master first."""
    return [child for child in descendants(pid) if "gunicorn" in proc_cmdline(child)
            and not proc_cmdline(child).startswith("buildah")]


def stop_tree(process: subprocess.Popen) -> None:
    """Stop `buildah run` as `docker stop` would: SIGTERM to gunicorn's master (which then ends
    its workers, and buildah returns), then a kill for whatever is left after 30 s."""
    tree = descendants(process.pid)
    for pid in gunicorns(process.pid)[:1]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        for pid in [process.pid, *tree]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)
    left = [pid for pid in tree if Path(f"/proc/{pid}").exists()]
    assert left == [], f"still running after the container stopped: {left}"


@pytest.fixture(scope="module")
def served(container, tmp_path_factory) -> Iterator[Served]:
    """Migrations applied by the image, then the image's command (gunicorn) serving."""
    migrated = container.run("flask", "--app", "wsgi", "db", "upgrade", timeout=120)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    log = tmp_path_factory.mktemp("image-run") / "gunicorn.log"
    port = int(container.env["GUNICORN_BIND"].rpartition(":")[2])
    with open(log, "wb") as handle:
        process = subprocess.Popen(container.command(*container.config["Cmd"]),
                                   stdout=handle, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port(port, 60, process)
        except ServerUnavailable as exc:
            pytest.fail(f"the image's command does not serve ({exc}):\n"
                        f"{log.read_text(errors='replace')[-3000:]}", pytrace=False)
        yield Served(container, process, f"http://127.0.0.1:{port}", log,
                     [migrated.stdout, migrated.stderr])
    finally:
        stop_tree(process)
    stopped = log.read_text(errors="replace")
    assert "Shutting down: Master" in stopped and not ERROR_LINE.search(stopped), stopped[-3000:]


def test_the_image_applies_the_migrations(served):
    engine = create_engine(served.container.env["DATABASE_URL"])
    with engine.connect() as conn:
        tables = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()

    assert {"coins", "quotes", "requested_symbols", "refresh_lease"} <= tables
    assert len(revisions) == 1


def test_gunicorn_in_the_image_serves_readyz_and_a_quote(served):
    ready = requests.get(served.url + "/readyz", timeout=10)
    quote = requests.get(served.url + "/api/v1/quotes", params={"symbol": "BTC"}, timeout=15)

    assert ready.status_code == 200, ready.text
    assert quote.status_code == 200, quote.text
    assert quote.json()["data"]["BTC"]["source"] in {"provider", "database", "cache"}
    assert float(quote.json()["data"]["BTC"]["quote"]["USD"]["price"]) > 0


def test_the_image_runs_as_an_unprivileged_user(served):
    user = served.container.config.get("User", "")
    serving = gunicorns(served.process.pid)

    assert user and user.split(":")[0] not in {"root", "0"}, user
    assert len(serving) >= 3, serving  # the master and its two workers
    assert all(0 not in proc_uids(pid) for pid in serving), [proc_uids(p) for p in serving]


def test_the_runtime_stage_has_no_compiler(served):
    found = served.container.run(
        "python", "-c", f"import shutil; print([c for c in {COMPILERS!r} if shutil.which(c)])")

    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_the_images_healthcheck_passes(served):
    check = served.container.config["Healthcheck"]
    test = check["Test"]
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]

    assert test[0] in {"CMD", "CMD-SHELL"}, test
    result = served.container.run(*command, timeout=check["Timeout"] / 1e9 + 10)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_refresher_runs_in_the_image(served):
    requests.get(served.url + "/api/v1/quotes", params={"symbol": "ETH"}, timeout=15)
    # The request log reaches PostgreSQL within its flush interval (2 s): then a round has work.
    deadline = time.monotonic() + 20
    while True:
        ran = served.container.run("flask", "--app", "wsgi", "refresh", "--once", timeout=60)
        served.outputs += [ran.stdout, ran.stderr]
        assert ran.returncode == 0, ran.stdout + ran.stderr
        if re.search(r"refresh round: \d+ of [1-9]\d* symbol", ran.stdout):
            break
        assert time.monotonic() < deadline, ran.stdout
        time.sleep(1)


def test_no_error_line_in_the_images_log(served):
    requests.get(served.url + "/readyz", timeout=10)  # at least one request served, whatever ran

    output = served.output()
    assert "Booting worker" in output, output[-3000:]
    assert not ERROR_LINE.search(output), output[-5000:]
    assert E2E_KEY not in output


def test_report_the_image_size(image, capsys):
    size = buildah("images", "--format", "{{.Size}}", image).stdout.strip()  # e.g. "251 MB"
    with capsys.disabled():
        print(f"\nimage {image}: {size}")

    number, unit = re.fullmatch(r"([\d.]+) (kB|MB|GB)", size).groups()
    assert 50 < float(number) * {"kB": 1e-3, "MB": 1, "GB": 1e3}[unit] < 1000, size
