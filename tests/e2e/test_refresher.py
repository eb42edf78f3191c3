"""Refresh-ahead against real processes: gunicorn (2 workers), refreshers, PostgreSQL, memcached
and the fake CoinMarketCap (issue 11, acceptance 2)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import requests
from sqlalchemy.engine import make_url

from tests.e2e.conftest import (
    ROOT,
    Process,
    migrate,
    new_database,
    service_env,
    start_fake_cmc,
    start_gunicorn,
    wait_for,
)
from tests.servers import free_port, stop, wait_for_port

INTERVAL = 2
MAX_AGE = 6  # due after 3 s: refreshed every second round, never stale between them
LEASE_SECONDS = 15  # RefreshPolicy: a call may take 10 s, the lease outlives it by 5


@dataclass
class Stack:
    """gunicorn and the fake CoinMarketCap on a database of their own; refreshers started per test."""

    service: Process
    fake: Process
    env: dict[str, str]
    workdir: Path

    def quote_calls(self) -> list[dict]:
        calls = requests.get(self.fake.url + "/__fake__/calls", timeout=5).json()["calls"]
        return [c for c in calls if c["path"].endswith("quotes/latest")]

    def get(self, symbols: str) -> requests.Response:
        return requests.get(self.service.url + "/api/v1/quotes", params={"symbol": symbols}, timeout=15)

    def set_price(self, symbol: str, price: str) -> None:
        requests.post(self.fake.url + "/__fake__/prices", json={symbol: price}, timeout=5).raise_for_status()

    def set_latency(self, seconds: float) -> None:
        requests.post(self.fake.url + "/__fake__/latency", json={"seconds": seconds}, timeout=5).raise_for_status()

    def refresher(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "refresh", *args],
                                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def requested(self, symbols: list[str]) -> bool:
        """Whether the workers have handed every one of `symbols` over as requested (their
        buffers flush every 2 s: wait for this rather than for a fixed time)."""
        url = make_url(self.env["DATABASE_URL"])
        with psycopg2.connect(host=url.host, port=url.port, user=url.username,
                              password=url.password, dbname=url.database) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM requested_symbols WHERE symbol = ANY(%s)",
                            (symbols,))
                found = cur.fetchone()[0]
        conn.close()
        return found == len(set(symbols))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, database_url, memcached_servers) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("refresher")
    fake = start_fake_cmc(workdir / "fake.log")
    database = new_database(database_url, "coinquote_refresh")
    # Rounds refresh the quotes due (past half the max age): due at every round, never stale.
    env = {**service_env(fake.url, database, memcached_servers),
           "REFRESH_INTERVAL_SECONDS": str(INTERVAL), "QUOTE_MAX_AGE_SECONDS": str(MAX_AGE)}
    migrated = migrate(env)
    assert migrated.returncode == 0, migrated.stderr
    service = start_gunicorn(env, workdir / "gunicorn.log", workers=2)
    yield Stack(service, fake, env, workdir)
    stop(service.process)
    stop(fake.process)


@pytest.fixture
def fresh(stack, flush_memcached) -> Stack:
    """Nothing cached from an earlier test; upstream back to its defaults."""
    requests.post(stack.fake.url + "/__fake__/reset", timeout=5).raise_for_status()
    return stack


def until_due(fetched: float) -> None:
    """Wait until quotes fetched at `fetched` are due for a refresh (half the max age): a round
    refreshes only those. A computed moment, not a race with another process."""
    time.sleep(max(0.0, fetched + MAX_AGE / 2 + 0.5 - time.monotonic()))


def rounds_logged(text: str) -> list[int]:
    """The calls of each round a refresher logged."""
    return [int(line.split(" in ")[1].split(" call")[0])
            for line in text.splitlines() if "refresh round:" in line and " in " in line]


def test_symbols_requested_once_follow_upstream_prices_and_requests_never_call_upstream(fresh):
    first = fresh.get("BTC,ETH")
    assert first.status_code == 200
    calls_by_requests = len(fresh.quote_calls())
    refresher = fresh.refresher("follow")
    try:
        served = []
        for price in ("70001.5", "70002.5", "70003.5"):
            fresh.set_price("BTC", price)

            def answered_new_price():
                body = fresh.get("BTC,ETH").json()["data"]
                served.append((body["BTC"]["source"], body["ETH"]["source"]))
                return body["BTC"]["quote"]["USD"]["price"] == float(price)

            assert wait_for(answered_new_price, 15), f"BTC never followed upstream to {price}"
        calls = len(fresh.quote_calls())
    finally:
        stop(refresher)

    assert calls_by_requests == 1
    # Every call after the first request was a refresher's (its log counts them); none a request's.
    assert calls - calls_by_requests == sum(rounds_logged(fresh.log("follow")))
    assert {source for pair in served for source in pair} <= {"cache", "database"}


def test_each_round_is_one_upstream_call_per_100_symbols(fresh):
    symbols = [f"SYN{i}" for i in range(1, 251)]
    for start in range(0, 250, 100):
        assert fresh.get(",".join(symbols[start:start + 100])).status_code == 200
    fetched = time.monotonic()
    assert wait_for(lambda: fresh.requested(symbols), 30), "the workers never noted the symbols"
    until_due(fetched)
    before = len(fresh.quote_calls())

    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "refresh", "--once"],
                          cwd=ROOT, env=fresh.env, capture_output=True, text=True, timeout=120)
    calls = fresh.quote_calls()[before:]

    assert done.returncode == 0, done.stderr
    refreshed = [set(call["params"]["symbol"].split(",")) for call in calls]
    assert set(symbols) <= set().union(*refreshed)
    assert all(len(batch) <= 100 for batch in refreshed)
    assert len(calls) == math.ceil(len(set().union(*refreshed)) / 100)


def test_two_refreshers_running_at_once_make_one_round_per_interval_between_them(fresh):
    assert fresh.get("BTC").status_code == 200
    assert wait_for(lambda: fresh.requested(["BTC"]), 30), "the workers never noted BTC"
    before = len(fresh.quote_calls())
    first, second = fresh.refresher("pair-a"), fresh.refresher("pair-b")
    started = time.monotonic()
    # A loaded machine can take seconds to start them: count from when both are running.
    both_up = wait_for(lambda: "refresher " in fresh.log("pair-a")
                       and "refresher " in fresh.log("pair-b"), 60)
    up_at = time.monotonic()
    time.sleep(max(0.0, up_at + 12 - time.monotonic()))  # the observed stretch, not an edge
    stop(first)
    stop(second)  # each ends the round under way first
    ended = time.monotonic()
    calls = len(fresh.quote_calls()) - before

    rounds = rounds_logged(fresh.log("pair-a")) + rounds_logged(fresh.log("pair-b"))
    assert both_up, "the refreshers did not start within 60 s"
    assert len(rounds) <= (ended - started) / INTERVAL + 1  # never two rounds in one interval
    # ... and rounds did happen (how many a loaded 2-core machine fits in is not the point).
    assert len(rounds) >= 2
    assert sum(rounds) == calls


def test_a_refresher_killed_mid_round_does_not_stop_the_next_round(fresh):
    assert fresh.get("BTC").status_code == 200
    fetched = time.monotonic()  # at the latest
    assert wait_for(lambda: fresh.requested(["BTC"]), 30), "the workers never noted BTC"
    until_due(fetched)  # else its first round refreshes nothing and the next one is killed
    fresh.set_latency(4)  # the killed refresher's call is under way for 4 s
    before = len(fresh.quote_calls())
    killed = fresh.refresher("killed")
    assert wait_for(lambda: len(fresh.quote_calls()) > before, 20), "the first refresher never called"
    call_seen = time.monotonic()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    fresh.set_latency(0)
    calls_at_kill = len(fresh.quote_calls())
    survivor = fresh.refresher("survivor")
    try:
        # Watched at CoinMarketCap, not through requests: past the max age a request fetches.
        assert wait_for(lambda: len(fresh.quote_calls()) > calls_at_kill, LEASE_SECONDS + 15,
                        every=0.5), "no round after the killed refresher's lease expired"
        waited = time.monotonic() - call_seen
    finally:
        stop(survivor)

    assert "refresh round:" not in fresh.log("killed")  # it really died mid-round
    assert waited >= LEASE_SECONDS - 5  # the survivor waited for the lease to expire


def test_sigterm_inside_a_round_stops_the_refresher_between_batches(fresh):
    symbols = [f"SYN{i}" for i in range(300, 550)]  # three batches at least
    for start in range(0, 250, 100):
        assert fresh.get(",".join(symbols[start:start + 100])).status_code == 200
    fetched = time.monotonic()
    assert wait_for(lambda: fresh.requested(symbols), 30), "the workers never noted the symbols"
    until_due(fetched)
    fresh.set_latency(2)  # each batch's call takes 2 s
    before = len(fresh.quote_calls())
    refresher = fresh.refresher("sigterm")
    try:
        assert wait_for(lambda: len(fresh.quote_calls()) > before, 20), "no round started"
        refresher.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        refresher.wait(30)
        took = time.monotonic() - signalled
    finally:
        fresh.set_latency(0)
        stop(refresher)

    assert len(fresh.quote_calls()) - before == 1  # the batch under way, no other
    assert took < 2 + 1.5  # not the 4 s more the other batches take
    assert "stopped: stopping" in fresh.log("sigterm")


def test_history_is_pruned_once_a_day_whichever_refresher_runs(stack):
    first, second = stack.refresher("prune-a"), stack.refresher("prune-b")
    started = time.monotonic()

    def logs() -> list[str]:
        # Every refresher this module started, on the one database.
        return [path.read_text(errors="replace") for path in stack.workdir.glob("*.log")
                if path.name not in ("gunicorn.log", "fake.log")]

    pruned = wait_for(lambda: any("history pruned" in log for log in logs()), 30)
    # Then watch for a second pruning while each has asked for the day's claim after a round
    # (at least every 5 s): a longer watch only makes the check stricter.
    time.sleep(max(0.0, started + 8 - time.monotonic()))
    stop(first)
    stop(second)

    assert pruned, "no refresher pruned within 30 s"
    assert sum(log.count("history pruned") for log in logs()) == 1  # one between them


def process_group(pgid: int) -> dict[int, str]:
    """pid -> command line of every live process in the group `pgid`."""
    members = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members[int(stat.parent.name)] = cmdline
    return members


def test_ctrl_c_on_make_run_stops_gunicorn_and_its_refresher(stack, tmp_path):
    port = free_port()
    env = {**stack.env, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1"}
    log = open(tmp_path / "make-run.log", "wb")
    # As from a terminal: make, its shell, gunicorn and the refresher share one process group.
    make = subprocess.Popen(["make", "-o", ".venv/.run-deps", "run"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, 60, make)
        output = tmp_path / "make-run.log"
        assert wait_for(lambda: "window 900 s" in output.read_text(errors="replace"), 30), \
            "make run started no refresher"

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C
        make.wait(30)
        left = wait_for(lambda: not process_group(make.pid), 15) or process_group(make.pid)
    finally:
        if process_group(make.pid):
            os.killpg(make.pid, signal.SIGKILL)

    assert left is True, f"still running after Ctrl-C: {left}"
    assert "refresher: stopping" in output.read_text(errors="replace")
