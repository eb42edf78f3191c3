"""Chaos run: the production shape under steady mixed traffic while its parts are killed.

    python -m bench.chaos [--phase-seconds 30] [--threads 6] [--short] [--out PATH]

Two gunicorn instances behind the bundled nginx (deploy/nginx.conf, rendered as the e2e tests
render it, without the per-client limit: the load comes from one address), two refreshers, two
memcached servers, PostgreSQL and the fake CoinMarketCap with a plan. Traffic threads ask for
the hot set (one coin: the edge's fast path; three: the app), a tail of coins few ask for,
conversions and history, all along, while the script in turn: SIGKILLs the refresher holding
the lease in the middle of a round; SIGKILLs one gunicorn instance (master and workers) and
brings it back on its port; kills one memcached server and brings it back; restarts
PostgreSQL; makes CoinMarketCap fail (500s, then answers later than the 8 s deadline). It
prints per phase the requests, the answers by status, the stale answers and p50/p99, then
checks the invariants (bench/README.md, Chaos) and exits 1 when one breaks, or a fault could
not be staged. `--short` is the version CI runs: 8 s phases, the same invariants."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import requests
from sqlalchemy.engine import make_url

from tests.conftest import migrate_database
from tests.e2e.conftest import E2E_KEY, ROOT, render_nginx_conf, service_env, wait_for
from tests.servers import Memcached, Postgres, free_port, wait_for_port

HOT = ["BTC", "ETH", "USDT", "BNB", "SOL", "XRP", "ETC", "DOGE"]  # the fake's coins
PLAN = {"daily_credits": 5000, "calls_per_minute": 60}

@dataclass
class Answer:
    phase: str  # when the request was sent
    ended: str  # when its answer came
    kind: str
    status: int
    seconds: float
    stale: bool = False
    retry_after: bool = False
    json_error: bool = True
    message: str = ""


@dataclass
class Stack:
    """Every process of the run, and how to reach each."""

    workdir: Path
    postgres: Postgres
    memcached: list[Memcached]
    env: dict[str, str]
    fake_url: str = ""
    nginx_url: str = ""
    app_ports: list[int] = field(default_factory=list)
    apps: list[subprocess.Popen] = field(default_factory=list)
    refreshers: list[subprocess.Popen] = field(default_factory=list)
    others: list[subprocess.Popen] = field(default_factory=list)
    every_group: set[int] = field(default_factory=set)
    # (what, from, to) in Unix time: a history row may be lost here, as the README says (a
    # process killed between its fetch and its write; PostgreSQL down).
    disruptions: list[tuple[str, float, float]] = field(default_factory=list)

    def spawn(self, args: list[str], log: str, env: dict[str, str] | None = None,
              port: int | None = None) -> subprocess.Popen:
        """A process in a session (and process group) of its own, remembered for the check that
        none is left behind."""
        handle = open(self.workdir / log, "ab")
        process = subprocess.Popen(args, cwd=ROOT, env=env if env is not None else self.env,
                                   stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.every_group.add(process.pid)
        if port is not None:
            wait_for_port(port, 60, process)
        return process

    def start_app(self, index: int) -> None:
        port = self.app_ports[index]
        env = {**self.env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2"}
        process = self.spawn([sys.executable, "-m", "gunicorn", "wsgi:app"], f"app-{index}.log",
                             env, port)
        if index < len(self.apps):
            self.apps[index] = process
        else:
            self.apps.append(process)

    def start_refresher(self) -> None:
        self.refreshers.append(self.spawn([sys.executable, "-m", "flask", "--app", "wsgi",
                                           "refresh"], f"refresher-{len(self.refreshers)}.log"))

    def fake(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, self.fake_url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def database(self):
        url = make_url(self.env["DATABASE_URL"])
        return psycopg2.connect(host=url.host, port=url.port, user=url.username,
                                dbname=url.database, connect_timeout=5)


def build(workdir: Path) -> Stack:
    postgres = Postgres().start()
    memcached = [Memcached().start(), Memcached().start()]
    migrate_database(postgres.url)
    stack = Stack(workdir, postgres, memcached, {})
    fake_port = free_port()
    stack.fake_url = f"http://127.0.0.1:{fake_port}"
    stack.others.append(stack.spawn(
        [sys.executable, "-m", "tests.fake_cmc", "--port", str(fake_port), "--api-key", E2E_KEY,
         "--daily-credits", str(PLAN["daily_credits"]),
         "--calls-per-minute", str(PLAN["calls_per_minute"])],
        "fake-cmc.log", {**os.environ}, fake_port))
    stack.env = {**service_env(stack.fake_url, postgres.url, [m.address for m in memcached]),
                 "QUOTE_MAX_AGE_SECONDS": "20", "CACHE_TTL_SECONDS": "10",
                 "REFRESH_WINDOW_SECONDS": "900", "REFRESH_INTERVAL_SECONDS": "5",
                 "CONVERT_CREDIT_SHARE": "0.3", "LOG_LEVEL": "warning"}
    stack.app_ports = [free_port(), free_port()]
    for index in range(2):
        stack.start_app(index)
    for _ in range(2):
        stack.start_refresher()
    nginx_dir = workdir / "nginx"
    nginx_dir.mkdir()
    nginx_dir.chmod(0o777)  # its workers run unprivileged when the master is root
    port = free_port()
    text = render_nginx_conf([f"127.0.0.1:{p}" for p in stack.app_ports], port, nginx_dir,
                             [m.address for m in memcached])
    # One client address sends the whole load: nginx's per-client limit would refuse most of it.
    text = "\n".join(line for line in text.splitlines() if "limit_req zone=" not in line)
    (nginx_dir / "nginx.conf").write_text(text)
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    stack.others.append(stack.spawn(
        [binary, "-c", str(nginx_dir / "nginx.conf"), "-e", str(nginx_dir / "startup.log"),
         "-g", "daemon off;"], "nginx.log", {}, port))
    stack.nginx_url = f"http://127.0.0.1:{port}"
    return stack


# -- traffic -------------------------------------------------------------------------------------

class Traffic:
    """Threads asking nginx for a mix of requests, each answer noted under the current phase."""

    def __init__(self, url: str, threads: int) -> None:
        self.url = url
        self.phase = "start"
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, seed: int) -> None:
        chooser = random.Random(seed)
        session = requests.Session()
        while not self.stopping.is_set():
            kind, path = request_of(chooser)
            phase, began = self.phase, time.monotonic()
            try:
                response = session.get(self.url + path, timeout=20)
            except requests.RequestException:
                answer = Answer(phase, self.phase, kind, 0, time.monotonic() - began)
            else:
                answer = read_answer(phase, self.phase, kind, response, time.monotonic() - began)
            with self.lock:
                self.answers.append(answer)
            time.sleep(chooser.uniform(0.01, 0.05))


def request_of(chooser: random.Random) -> tuple[str, str]:
    roll = chooser.random()
    if roll < 0.45:
        return "hot", f"/api/v1/quotes?symbol={chooser.choice(HOT)}"
    if roll < 0.65:
        return "hot", "/api/v1/quotes?symbol=" + ",".join(chooser.sample(HOT, 3))
    if roll < 0.75:  # a tail: mostly coins someone asked for already, some never seen
        return "tail", f"/api/v1/quotes?symbol=SYN{int(chooser.paretovariate(1.2) * 10)}"
    if roll < 0.85:
        return "convert", f"/api/v1/quotes?symbol={chooser.choice(HOT[:3])}&convert=EUR"
    return "history", f"/api/v1/quotes/history?symbol={chooser.choice(HOT[:4])}&interval=1h"


def read_answer(phase: str, ended: str, kind: str, response: requests.Response,
                seconds: float) -> Answer:
    try:
        body = response.json()
    except ValueError:
        return Answer(phase, ended, kind, response.status_code, seconds, json_error=False)
    stale = response.status_code == 200 and isinstance(body.get("data"), dict) and any(
        isinstance(coin, dict) and coin.get("stale") is True for coin in body["data"].values())
    error_shape = response.status_code < 400 or {"code", "status", "message"} <= set(body)
    message = str(body.get("message", ""))[:60] if response.status_code >= 500 else ""
    return Answer(phase, ended, kind, response.status_code, seconds, stale,
                  "Retry-After" in response.headers, error_shape, message)


# -- faults ----------------------------------------------------------------------------------------

def kill_an_app(stack: Stack, pause: float) -> None:
    """SIGKILL one gunicorn instance, master and workers (a container killed), then start it
    again on its port."""
    master = stack.apps[0]
    killed = time.time()
    os.killpg(master.pid, signal.SIGKILL)
    master.wait()
    stack.disruptions.append(("gunicorn SIGKILL", killed, killed))
    if not wait_for(lambda: not group_alive(master.pid), 10):
        raise Invariant("a SIGKILLed gunicorn instance's processes did not go")
    time.sleep(pause)
    stack.start_app(0)


def kill_a_memcached(stack: Stack, pause: float) -> None:
    stack.memcached[0].stop()
    stack.memcached[0].process.wait()
    time.sleep(pause)
    stack.memcached[0].start()


def restart_postgres(stack: Stack, pause: float) -> None:
    down = time.time()
    stack.postgres.pause()
    time.sleep(pause)
    stack.postgres.resume()
    stack.disruptions.append(("PostgreSQL down", down, time.time()))


def fail_coinmarketcap(stack: Stack, seconds: float) -> None:
    """500s for half of `seconds` (never charged), then answers later than the 8 s deadline:
    CoinMarketCap charges an answer it sends whether or not the client still waits, and a call
    that timed out keeps its reservation, so /usage and the fake still agree."""
    stack.fake("POST", "/__fake__/failures", {"status": 500, "times": 1_000_000})
    time.sleep(seconds / 2)
    stack.fake("DELETE", "/__fake__/failures")
    stack.fake("POST", "/__fake__/latency", {"seconds": 10})
    late = time.time()
    time.sleep(seconds / 2)
    stack.fake("POST", "/__fake__/latency", {"seconds": 0})
    # What it sent after the deadline nobody read: no history row can hold it.
    stack.disruptions.append(("CoinMarketCap late", late, time.time() + 10))


def kill_the_lease_holder(stack: Stack) -> str:
    """SIGKILL the refresher whose round is under way (its call held up for 3 s), start another."""
    stack.fake("POST", "/__fake__/latency", {"seconds": 3})
    try:
        # A round under a CoinMarketCap verdict ends at once: look often enough to see it.
        holder = wait_for(lambda: round_holder(stack), 60, every=0.02)
        if not holder:
            raise Invariant("no refresh round started within 30 s")
        pid = int(holder.split(":")[1])
        victim = next((p for p in stack.refreshers if p.pid == pid), None)
        if victim is None:
            raise Invariant(f"the lease holder {holder} is none of the refreshers started")
        killed = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        stack.disruptions.append(("refresher SIGKILL", killed, killed))
    finally:
        stack.fake("POST", "/__fake__/latency", {"seconds": 0})
    stack.refreshers.remove(victim)
    stack.start_refresher()
    return holder


def round_holder(stack: Stack) -> str | None:
    with stack.database() as conn, conn.cursor() as cur:
        cur.execute("SELECT holder FROM refresh_lease WHERE name = 'refresh'"
                    " AND holder IS NOT NULL AND expires_at > now()")
        row = cur.fetchone()
    conn.close()
    return row[0] if row else None


# -- checks --------------------------------------------------------------------------------------

class Invariant(AssertionError):
    """A fault could not be staged as planned."""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def history_rows(stack: Stack) -> dict[str, list[float]]:
    """Each symbol's stored fetch times (Unix seconds), oldest first."""
    with stack.database() as conn, conn.cursor() as cur:
        cur.execute("SELECT lookup_symbol, extract(epoch FROM fetched_at) FROM quotes"
                    " WHERE currency = 'USD' ORDER BY 2")
        rows = cur.fetchall()
    conn.close()
    found: dict[str, list[float]] = {}
    for symbol, at in rows:
        found.setdefault(symbol, []).append(float(at))
    return found


def quotes_sent(stack: Stack) -> dict[str, list[float]]:
    """Each symbol's base-currency quotes the fake answered (Unix seconds), oldest first."""
    sent: dict[str, list[float]] = {}
    for call in stack.fake("GET", "/__fake__/calls")["calls"]:
        if call.get("answered") is not None and call.get("currency") == "USD":
            for symbol in call["answered"]:
                sent.setdefault(symbol, []).append(call["answered_at"])
    return {symbol: sorted(times) for symbol, times in sent.items()}


def unstored(sent: dict[str, list[float]], stored: dict[str, list[float]]) -> list[float]:
    """When each quote sent was, that no history row matches: a row of the same symbol fetched
    (by coinquote's clock) from a second before the answer to 10 s after it, each row once."""
    missing = []
    for symbol, times in sent.items():
        rows, used = stored.get(symbol, []), 0
        for at in times:
            while used < len(rows) and rows[used] < at - 1:
                used += 1
            if used < len(rows) and rows[used] <= at + 10:
                used += 1
            else:
                missing.append(at)
    return missing


def phase_rows(answers: list[Answer], phases: list[str]) -> list[dict]:
    rows = []
    for phase in phases:
        mine = [a for a in answers if a.phase == phase]
        if not mine:
            continue
        times = sorted(a.seconds * 1000 for a in mine)
        rows.append({
            "phase": phase, "requests": len(mine),
            "by_status": dict(sorted(Counter(a.status for a in mine).items())),
            "stale": sum(a.stale for a in mine),
            "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        })
    return rows


def check(stack: Stack, answers: list[Answer], cmc_phase: str) -> dict[str, str | None]:
    """Each invariant's failure (None when it holds), but for the processes (after the stop)."""
    found: dict[str, str | None] = {}
    server_errors = [a for a in answers if a.status == 500]
    found["no 500"] = f"{len(server_errors)} answers were 500" if server_errors else None
    dropped = [a for a in answers if a.status == 0]
    found["no connection error"] = f"{len(dropped)} requests got no answer" if dropped else None
    # The README's errors: 503 with Retry-After when the budget is spent or the circuit open;
    # 502, 503 ("Retry-After when known") or 504 while CoinMarketCap fails; each a JSON error.
    undocumented = [a for a in answers if a.status >= 500 and not (
        a.json_error and (a.status == 503 and a.retry_after
                          or a.status in (502, 503, 504) and cmc_phase in (a.phase, a.ended)))]
    found["5xx only as documented"] = (
        f"{len(undocumented)}: " + "; ".join(f"{n} x {s} in {p} ({k}) {m!r}" for (s, p, k, m), n
                                             in Counter((a.status, a.phase, a.kind, a.message)
                                                        for a in undocumented).most_common(8))
        if undocumented else None)
    fake = stack.fake("GET", "/__fake__/usage")
    found["no over-quota call"] = (f"CoinMarketCap refused {fake['refused']}"
                                   if fake["refused"] else None)
    day_used = fake["usage"]["current_day"]["credits_used"]
    usage = requests.get(f"http://127.0.0.1:{stack.app_ports[1]}/usage", timeout=10).json()
    counted = usage["today"]["credits_used"]
    found["/usage equals the fake's count"] = (
        f"/usage says {counted} credits, the fake counted {day_used}" if counted != day_used
        else None)
    sent, stored = quotes_sent(stack), history_rows(stack)
    missing = unstored(sent, stored)
    excused = Counter(next((what for what, start, end in stack.disruptions
                            if start - 10 <= at <= end + 10), "") for at in missing)
    unexcused = excused.pop("", 0)
    found["every quote sent is a history row"] = (
        f"{unexcused} quotes sent are no history row, away from any kill or outage"
        if unexcused else None)
    found["_figures"] = json.dumps({
        "quotes_sent": sum(map(len, sent.values())),
        "history_rows": sum(map(len, stored.values())),
        "lost_at": dict(excused),
        "credits_fake": day_used, "credits_usage": counted,
        "503_without_retry_after": sum(a.status == 503 and not a.retry_after for a in answers)})
    return found


def warm(stack: Stack) -> bool:
    """Whether a quote and a conversion answer through nginx."""
    try:
        return all(requests.get(f"{stack.nginx_url}/api/v1/quotes?{query}", timeout=20)
                   .status_code == 200 for query in ("symbol=BTC", "symbol=ETH&convert=EUR"))
    except requests.RequestException:
        return False


def stop_all(stack: Stack) -> None:
    for process in [*stack.refreshers, *stack.apps, *stack.others]:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 30
    for process in [*stack.refreshers, *stack.apps, *stack.others]:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for server in stack.memcached:
        server.stop()
    wait_for(lambda: not any(group_alive(g) for g in stack.every_group), 20)


# -- the run -------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-seconds", type=float, default=30)
    parser.add_argument("--short", action="store_true",
                        help="CI: 8 s phases; fail only on the invariants that hold on main")
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "chaos.json"))
    args = parser.parse_args(argv)
    seconds = 8.0 if args.short else args.phase_seconds
    workdir = Path(tempfile.mkdtemp(prefix="coinquote-chaos-"))
    workdir.chmod(0o755)
    print(f"chaos run: {seconds:g} s phases; logs in {workdir}", flush=True)
    stack = build(workdir)
    traffic = Traffic(stack.nginx_url, args.threads)
    phases: list[str] = []
    staged: dict[str, str] = {}
    started: dict[str, str] = {}

    def phase(name: str, fault: Callable[[], object] | None = None) -> None:
        phases.append(name)
        started[name] = f"{datetime.now(UTC):%H:%M:%S}"
        traffic.phase = name
        began = time.monotonic()
        print(f"[{started[name]}] {name}", flush=True)
        try:
            if fault is not None:
                result = fault()
                if isinstance(result, str):
                    staged[name] = result
        except Invariant as exc:
            staged[name] = f"NOT STAGED: {exc}"
        time.sleep(max(0.0, began + seconds - time.monotonic()))

    cmc_phase = "CoinMarketCap fails"
    try:
        # A cold start on a loaded machine takes seconds: the phases begin once it answers.
        if not wait_for(lambda: warm(stack), 120, every=1):
            raise SystemExit(f"chaos: the stack never answered; logs in {workdir}")
        traffic.start()
        phase("steady")
        phase("refresher SIGKILL", lambda: "killed " + kill_the_lease_holder(stack))
        phase("gunicorn SIGKILL", lambda: kill_an_app(stack, seconds / 4))
        phase("memcached killed", lambda: kill_a_memcached(stack, seconds / 2))
        phase("PostgreSQL restart", lambda: restart_postgres(stack, seconds / 3))
        phase(cmc_phase, lambda: fail_coinmarketcap(stack, seconds if args.short else 30))
        phase("recovered")
        traffic.stop()
        time.sleep(3)  # in-flight fetches land in the database
        answers = list(traffic.answers)
        results = check(stack, answers, cmc_phase)
    finally:
        traffic.stop()
        stop_all(stack)
        stack.postgres.close()
    # Every process started (and each one's children: gunicorn workers) is gone once stopped.
    left = sorted(g for g in stack.every_group if group_alive(g))
    results["no process left behind"] = f"process groups still alive: {left}" if left else None
    return report(phase_rows(answers, phases), results, staged, args, workdir)


def report(rows: list[dict], results: dict[str, str | None], staged: dict[str, str],
           args: argparse.Namespace, workdir: Path) -> int:
    figures = json.loads(results.pop("_figures"))
    print("\n| phase | requests | by status | stale | p50 ms | p99 ms |")
    print("|---|---:|---|---:|---:|---:|")
    for row in rows:
        statuses = " ".join(f"{s}: {n}" for s, n in row["by_status"].items())
        print(f"| {row['phase']} | {row['requests']} | {statuses} | {row['stale']} |"
              f" {row['p50_ms']} | {row['p99_ms']} |")
    for name, note in staged.items():
        print(f"  {name}: {note}")
    print(f"\nfigures: {figures}")
    failed = {name: why for name, why in results.items() if why}
    for name, why in results.items():
        print(f"{'FAIL' if why else 'ok  '} {name}{': ' + why if why else ''}")
    not_staged = [n for n, note in staged.items() if note.startswith("NOT STAGED")]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"phases": rows, "invariants": results,
                                          "figures": figures, "staged": staged}, indent=2))
    if failed or not_staged:
        print(f"chaos: {len(failed)} invariant(s) broken, {len(not_staged)} fault(s) not"
              f" staged; logs in {workdir}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
