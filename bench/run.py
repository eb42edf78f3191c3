"""coinquote benchmark: the production shape on this machine, loaded by wrk, against a floor.

Starts throwaway PostgreSQL and memcached, the fake CoinMarketCap (answering at once),
coinquote under gunicorn with gunicorn.conf.py, a second coinquote whose cache never hits
(for the database path), the baseline app (bench/baseline.py) under the same
gunicorn.conf.py, and nginx with deploy/nginx.conf twice: as shipped (the fast path, plus a
static copy of the same body: the ceiling) and without the fast path (the app's cache hit
through nginx). Then it interleaves wrk runs (baseline, each scenario, baseline, ...), prints
medians and the issue's target ratios. `--soak` adds a mixed-traffic run that samples worker
memory.

    python -m bench.run [--duration 5] [--rounds 3] [--connections 32] [--soak 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from tests.e2e.conftest import render_nginx_conf
from tests.servers import Memcached, Postgres, free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-not-secret"
STATIC = "nginx static file, same body (ceiling)"
FAST_PATH = "nginx fast path (memcached), 1 symbol"
APP_VIA_NGINX = "cache hit through nginx (no fast path)"
TEN_STATIC = "nginx static file, 10-symbol body (ceiling)"
TEN_EDGE = "nginx edge, 10-symbol list"
TEN_EDGE_LOWER = "nginx edge, 10-symbol list in lower case (njs)"
TEN_APP = "10-symbol list through nginx to the app"
FIFTY_STATIC = "nginx static file, 50-symbol body (ceiling)"
FIFTY_EDGE = "nginx edge, 50-symbol list"
CACHE_HIT = "cache hit, 1 symbol"
DATABASE_HIT = "database hit, 1 symbol"
# Issue 12's targets, each a ratio of two scenarios measured in the same run.
TARGETS = [
    ("fast path / nginx static", FAST_PATH, STATIC, 0.50),
    ("fast path / cache hit through nginx", FAST_PATH, APP_VIA_NGINX, 10.0),
    # Issue 18: a list at the edge against nginx serving the same body as a file.
    ("10-symbol list at the edge / nginx static", TEN_EDGE, TEN_STATIC, 0.50),
    # No target, shown beside it: spellings njs names, and a list too long to name itself.
    ("10-symbol list in lower case at the edge / nginx static", TEN_EDGE_LOWER, TEN_STATIC, None),
    ("50-symbol list at the edge / nginx static", FIFTY_EDGE, FIFTY_STATIC, None),
    ("cache hit / floor", CACHE_HIT, "baseline", 0.65),
    ("database hit / floor", DATABASE_HIT, "baseline", 0.35),
]
FIFTY = ",".join(f"SYN{i}" for i in range(1, 51))
TEN = ",".join(f"SYN{i}" for i in range(1, 11))

# Issue 18's flood: each request a list of ten cached coins, the n-th of junk_list() below
# from the offset given (a list the edge could serve, so one the app would write).
FLOOD_LUA = """
local counter = 0
local offset = 0
function init(args) offset = tonumber(args[1]) end
function request()
  counter = counter + 1
  local n = offset + counter
  local symbols = {}
  for k = 1, 3 do symbols[#symbols + 1] = "SYN" .. (n % 50 + 1); n = math.floor(n / 50) end
  for k = 44, 50 do symbols[#symbols + 1] = "SYN" .. k end
  return wrk.format("GET", "/api/v1/quotes?symbol=" .. table.concat(symbols, ","))
end
"""

# Each request asks for 50 synthetic coins nobody has seen: the provider path every time.
PROVIDER_LUA = """
local counter = 0
local offset = 0
function init(args) offset = tonumber(args[1]) end
function request()
  local first = offset + counter * 50
  counter = counter + 1
  local symbols = {}
  for i = 0, 49 do symbols[#symbols + 1] = "SYN" .. (first + i) end
  return wrk.format("GET", "/api/v1/quotes?symbol=" .. table.concat(symbols, ","))
end
"""
# The soak's traffic: mostly cache hits, some unknown symbols, conversions and new coins
# (every response a 200, so any non-2xx is a real error).
SOAK_LUA = """
local paths = {
  "/api/v1/quotes?symbol=BTC", "/api/v1/quotes?symbol=ETH,BTC,SOL",
  "/api/v1/quotes?symbol=%s", "/api/v1/quotes?symbol=BTC,NOPE",
  "/api/v1/quotes?symbol=BTC&convert=EUR", "/api/v1/quotes?symbol=DOGE",
}
local counter = 0
function request()
  counter = counter + 1
  if counter %% 50 == 0 then
    return wrk.format("GET", "/api/v1/quotes?symbol=SYN" .. (700000 + counter %% 250000))
  end
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
""" % FIFTY


@dataclass
class Run:
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(scenario: str, url: str, duration: int, connections: int, script: str | None = None,
        script_args: list[str] | None = None) -> Run:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        handle.write(script)
        handle.close()
        command += ["-s", handle.name]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Run(
        scenario=scenario,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=to_ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1)),
        p99_ms=to_ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1)),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        non_2xx=int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def spawn(args: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, 30, process)
    return process


def gunicorn(target: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    process = spawn([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", target], env, port, log)
    return process, f"http://127.0.0.1:{port}"


def nginx(upstream: str, memcached: str, workdir: Path, edit=None) -> tuple[subprocess.Popen, str]:
    """deploy/nginx.conf as the e2e tests run it (local ports, files in `workdir`), without the
    per-client limit (one benchmark client would hit it), then passed through `edit`."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    workdir.mkdir()
    workdir.chmod(0o777)  # its workers run unprivileged when the master is root
    port = free_port()
    text = render_nginx_conf([upstream], port, workdir, [memcached])
    text = "\n".join(line for line in text.splitlines() if "limit_req zone=" not in line)
    conf = workdir / "nginx.conf"
    conf.write_text(edit(text) if edit else text)
    process = spawn([binary, "-c", str(conf), "-e", str(workdir / "startup.log"), "-g", "daemon off;"],
                    {}, port, workdir / "stdout.log")
    return process, f"http://127.0.0.1:{port}"


def with_static_copies(directory: Path):
    """An edit adding `/bench/<name>.json`: nginx serving the files in `directory` from disk
    (the ceiling for the same body)."""
    def edit(text: str) -> str:
        location = (f"        location /bench/ {{\n"
                    f"            default_type application/json;\n"
                    f"            alias {directory}/;\n        }}\n\n        location / {{")
        return text.replace("        location / {", location, 1)
    return edit


def without_fast_path(text: str) -> str:
    """deploy/nginx.conf as it was before the fast path: every quotes request reaches the app."""
    return text.replace("location = /api/v1/quotes {", "location = /bench/no-fast-path {", 1)


def worker_rss_kib(master: subprocess.Popen) -> int:
    """Total resident memory of the gunicorn workers (children of the master)."""
    children = subprocess.run(["ps", "--ppid", str(master.pid), "-o", "rss="], capture_output=True,
                              text=True).stdout.split()
    return sum(int(c) for c in children)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.platform()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (A B A B ...)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--soak", type=int, default=0, help="seconds of mixed traffic (0: none)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument("--only", help="run only the scenarios whose name contains this text")
    parser.add_argument("--worker-class", help="GUNICORN_WORKER_CLASS for every server (default: the config's)")
    parser.add_argument("--workers", type=int, help="GUNICORN_WORKERS for every server")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS for every server")
    parser.add_argument("--flood", type=int, default=0,
                        help="then this many distinct lists through nginx: hit shares before/after")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="coinquote-bench-"))
    workdir.chmod(0o755)  # nginx's unprivileged workers reach their files below it
    postgres, memcached = Postgres().start(), Memcached().start()
    processes: list[subprocess.Popen] = []
    try:
        fake_port = free_port()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "CMC_"))}
        for option, variable in (("worker_class", "GUNICORN_WORKER_CLASS"), ("workers", "GUNICORN_WORKERS"),
                                 ("threads", "GUNICORN_THREADS")):
            if getattr(args, option) is not None:
                base_env[variable] = str(getattr(args, option))
        processes.append(spawn([sys.executable, "-m", "tests.fake_cmc", "--port", str(fake_port),
                                "--api-key", KEY], base_env, fake_port, workdir / "fake.log"))
        env = {**base_env, "CMC_API_KEY": KEY, "CMC_BASE_URL": f"http://127.0.0.1:{fake_port}",
               "DATABASE_URL": postgres.url, "MEMCACHED_SERVERS": memcached.address,
               "CACHE_TTL_SECONDS": "3600", "PYTHONUNBUFFERED": "1",
               # Edge documents live no longer than their quotes are fresh: keep them for the run.
               "QUOTE_MAX_AGE_SECONDS": "86400"}
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                       env=env, check=True, capture_output=True)
        app, app_url = gunicorn("wsgi:app", env, workdir / "coinquote.log")
        dead_cache = {**env, "MEMCACHED_SERVERS": f"127.0.0.1:{free_port()}"}
        dbhit, dbhit_url = gunicorn("wsgi:app", dead_cache, workdir / "dbhit.log")
        baseline_env = {**base_env, "BASELINE_MEMCACHED": memcached.address}
        baseline, baseline_url = gunicorn("bench.baseline:app", baseline_env, workdir / "baseline.log")
        processes += [app, dbhit, baseline]

        # Warm up: fetch (stores and caches), and give the baseline the same BTC document.
        btc = requests.get(app_url + "/api/v1/quotes?symbol=BTC", timeout=60)
        requests.get(app_url + f"/api/v1/quotes?symbol={FIFTY}", timeout=60).raise_for_status()
        requests.get(dbhit_url + "/api/v1/quotes?symbol=BTC", timeout=60).raise_for_status()
        from pymemcache.client.base import Client

        host, _, port = memcached.address.rpartition(":")
        Client((host, int(port))).set("baseline:BTC", btc.content, expire=0)
        # The static copies are the app's answers from the cache, the bytes the edge serves.
        static = workdir / "static"
        static.mkdir()
        static.chmod(0o755)
        bodies = {}
        for name, symbols in (("btc", "BTC"), ("ten", TEN), ("fifty", FIFTY)):
            requests.get(app_url + f"/api/v1/quotes?symbol={symbols}", timeout=60)
            hit = requests.get(app_url + f"/api/v1/quotes?symbol={symbols}", timeout=60)
            assert {c["source"] for c in hit.json()["data"].values()} == {"cache"}, hit.text
            (static / f"{name}.json").write_bytes(hit.content)
            (static / f"{name}.json").chmod(0o644)
            bodies[name] = hit.content
        app_address = app_url.removeprefix("http://")
        edge, edge_url = nginx(app_address, memcached.address, workdir / "nginx-edge",
                               with_static_copies(static))
        plain, plain_url = nginx(app_address, memcached.address, workdir / "nginx-plain",
                                 without_fast_path)
        processes += [edge, plain]
        for name, symbols in (("btc", "BTC"), ("ten", TEN), ("fifty", FIFTY)):
            for spelling in (symbols, symbols.lower()):  # named by nginx; by njs
                fast = requests.get(edge_url + f"/api/v1/quotes?symbol={spelling}", timeout=10)
                assert fast.content == bodies[name], (name, fast.headers)
                # The edge's answer (the app's has an ETag and a max-age of its own).
                assert fast.headers["Cache-Control"].endswith("=0"), fast.headers
                assert "ETag" not in fast.headers, (spelling, fast.headers)
            served = requests.get(edge_url + f"/bench/{name}.json", timeout=10).content
            assert served == bodies[name], name
        assert requests.get(plain_url + "/api/v1/quotes?symbol=BTC", timeout=10).headers["ETag"]

        scenarios = [
            (STATIC, edge_url + "/bench/btc.json", None),
            (FAST_PATH, edge_url + "/api/v1/quotes?symbol=BTC", None),
            (APP_VIA_NGINX, plain_url + "/api/v1/quotes?symbol=BTC", None),
            (TEN_STATIC, edge_url + "/bench/ten.json", None),
            (TEN_EDGE, edge_url + f"/api/v1/quotes?symbol={TEN}", None),
            (TEN_EDGE_LOWER, edge_url + f"/api/v1/quotes?symbol={TEN.lower()}", None),
            (TEN_APP, plain_url + f"/api/v1/quotes?symbol={TEN}", None),
            (FIFTY_STATIC, edge_url + "/bench/fifty.json", None),
            (FIFTY_EDGE, edge_url + f"/api/v1/quotes?symbol={FIFTY}", None),
            (CACHE_HIT, app_url + "/api/v1/quotes?symbol=BTC", None),
            ("cache hit, 50 symbols", app_url + f"/api/v1/quotes?symbol={FIFTY}", None),
            (DATABASE_HIT, dbhit_url + "/api/v1/quotes?symbol=BTC", None),
            ("provider path, 50 new symbols", app_url + "/api/v1/quotes", PROVIDER_LUA),
            ("convert=EUR, 1 symbol", app_url + "/api/v1/quotes?symbol=BTC&convert=EUR", None),
        ]
        if args.only:
            scenarios = [s for s in scenarios if args.only in s[0]]
        runs: list[Run] = []
        fake_url = f"http://127.0.0.1:{fake_port}"
        for round_number in range(args.rounds):
            runs.append(wrk("baseline", baseline_url + "/api/v1/quotes", args.duration, args.connections))
            for name, url, script in scenarios:
                before = len(requests.get(fake_url + "/__fake__/calls").json()["calls"])
                offset = str(10000 + round_number * 290000)
                run = wrk(name, url, args.duration, args.connections, script, [offset] if script else None)
                calls = len(requests.get(fake_url + "/__fake__/calls").json()["calls"]) - before
                if script:
                    print(f"  {name}: {calls} upstream calls for {run.requests} requests", flush=True)
                runs.append(run)
                requests.delete(fake_url + "/__fake__/calls")
            print(f"round {round_number + 1}/{args.rounds} done", flush=True)

        report = summarise(runs)
        ratios = target_ratios(report)
        print_report(report, None)
        print_targets(ratios)
        results = {"machine": machine(), "args": vars(args), "medians": report,
                   "targets": ratios, "runs": [asdict(r) for r in runs]}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
        if args.flood:
            results["flood"] = run_flood(edge_url, workdir / "nginx-edge", memcached.address, args)
        if args.soak:
            results["soak"] = soak = run_soak(app, app_url, args)
            print_report({}, soak)
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"\nwritten to {args.out}; logs in {workdir}")
    finally:
        for process in reversed(processes):
            stop(process)
        memcached.close()
        postgres.close()


def memcached_stats(address: str) -> dict[str, int]:
    from pymemcache.client.base import Client

    host, _, port = address.rpartition(":")
    stats = Client((host, int(port))).stats()
    return {name: int(stats[name.encode()]) for name in
            ("evictions", "curr_items", "total_items", "bytes", "limit_maxbytes")}


def edge_share(url: str, nginx_dir: Path, tag: str, count: int = 500) -> dict[str, float]:
    """Of `count` requests for each hot answer (one coin, a ten-coin list), the share nginx
    served from memcached, and whether the very first one was (before anything refilled it)."""
    shares = {}
    for name, query in (("single", "BTC"), ("list", TEN)):
        with requests.Session() as session:
            for i in range(count):
                session.get(url + f"/api/v1/quotes?symbol={query}", timeout=10,
                            headers={"X-Request-ID": f"{tag}-{name}-{i}"}).raise_for_status()
        time.sleep(0.5)  # the access log is written just after each answer
        served = {}
        for line in (nginx_dir / "access.log").read_text().splitlines():
            if f'"request_id":"{tag}-{name}-' in line:
                entry = json.loads(line)
                served[entry["request_id"]] = entry["served_by"]
        shares[name] = sum(v == "edge" for v in served.values()) / count
        shares[f"{name}_first_by_edge"] = served.get(f"{tag}-{name}-0") == "edge"
    return shares


def junk_list(n: int) -> str:
    """The n-th of about 125,000 distinct lists of ten cached coins (three vary, seven fixed);
    FLOOD_LUA builds the same."""
    varying = [f"SYN{(n // 50 ** k) % 50 + 1}" for k in range(3)]
    return ",".join([*varying, *(f"SYN{k}" for k in range(44, 51))])


def flood_lists(url: str, count: int, connections: int) -> dict[str, int]:
    """At least `count` distinct lists through nginx, in 10 s wrk runs; answers and errors."""
    done, errors = 0, 0
    while done < count:
        run = wrk("flood", url + "/api/v1/quotes", 10, connections, FLOOD_LUA, [str(done)])
        done += run.requests
        errors += run.non_2xx + run.socket_errors
    return {"requests": done, "errors": errors}


def run_flood(url: str, nginx_dir: Path, memcached: str, args) -> dict:
    """Issue 18, acceptance 4: `--flood` distinct lists through nginx; the hot answers' edge
    share and memcached's evictions before and after."""
    before = {"edge": edge_share(url, nginx_dir, "before"), "memcached": memcached_stats(memcached)}
    print(f"flood: {args.flood} distinct ten-coin lists through nginx", flush=True)
    started = time.monotonic()
    sent = flood_lists(url, args.flood, args.connections)
    seconds = time.monotonic() - started
    after_stats = memcached_stats(memcached)  # before the probes refill anything
    after = {"edge": edge_share(url, nginx_dir, "after"), "memcached": after_stats}
    distinct = len({tuple(dict.fromkeys(junk_list(n).split(",")))
                    for n in range(1, sent["requests"] + 1)})
    flood = {**sent, "distinct_lists": distinct, "seconds": round(seconds, 1),
             "before": before, "after": after}
    print(json.dumps(flood, indent=2), flush=True)
    return flood


def summarise(runs: list[Run]) -> dict[str, dict[str, float]]:
    report: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r.scenario for r in runs):
        mine = [r for r in runs if r.scenario == name]
        report[name] = {
            "rps": statistics.median(r.rps for r in mine),
            "p50_ms": statistics.median(r.p50_ms for r in mine),
            "p99_ms": statistics.median(r.p99_ms for r in mine),
            "errors": sum(r.non_2xx + r.socket_errors for r in mine),
        }
    baseline = report["baseline"]["rps"]
    for name, row in report.items():
        row["vs_baseline"] = row["rps"] / baseline
    return report


def target_ratios(report: dict[str, dict[str, float]]) -> list[dict]:
    """Each target's ratio from this run's medians (skipped when `--only` left a side out)."""
    ratios = []
    for name, numerator, denominator, target in TARGETS:
        if numerator in report and denominator in report:
            ratio = report[numerator]["rps"] / report[denominator]["rps"]
            ratios.append({"target": name, "ratio": ratio, "wanted": target,
                           "met": None if target is None else ratio >= target})
    return ratios


def print_targets(ratios: list[dict]) -> None:
    print("\n| target | ratio | wanted | verdict |")
    print("|---|---:|---:|---|")
    for row in ratios:
        shown = (lambda x: f"{x:.1f}×") if (row["wanted"] or 0) >= 2 else (lambda x: f"{x:.0%}")
        if row["wanted"] is None:
            print(f"| {row['target']} | {shown(row['ratio'])} | — | |")
            continue
        print(f"| {row['target']} | {shown(row['ratio'])} | ≥ {shown(row['wanted'])} "
              f"| {'met' if row['met'] else '**missed**'} |")


def run_soak(app: subprocess.Popen, url: str, args) -> dict[str, float]:
    warm_up = min(30, args.soak // 5)
    print(f"soak: {args.soak} s of mixed traffic ({warm_up} s warm-up)", flush=True)
    wrk("soak warm-up", url + "/", warm_up, args.connections, SOAK_LUA)
    after_warm_up = worker_rss_kib(app)
    samples = []
    started = time.monotonic()
    remaining = args.soak - warm_up
    while remaining > 0:
        chunk = min(30, remaining)
        run = wrk("soak", url + "/", chunk, args.connections, SOAK_LUA)
        samples.append({"t": round(time.monotonic() - started), "rss_kib": worker_rss_kib(app),
                        "rps": run.rps, "errors": run.non_2xx + run.socket_errors})
        remaining -= chunk
    end = worker_rss_kib(app)
    return {"rss_after_warm_up_kib": after_warm_up, "rss_end_kib": end,
            "growth": (end - after_warm_up) / after_warm_up, "samples": samples}


def print_report(report: dict[str, dict[str, float]], soak: dict | None) -> None:
    if report:
        print("\n| scenario | req/s | p50 ms | p99 ms | vs baseline | errors |")
        print("|---|---:|---:|---:|---:|---:|")
    for name, row in report.items():
        print(f"| {name} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
              f"| {row['vs_baseline']:.0%} | {row['errors']:.0f} |")
    if soak:
        print(f"\nsoak: worker RSS {soak['rss_after_warm_up_kib']} KiB after warm-up -> "
              f"{soak['rss_end_kib']} KiB at the end ({soak['growth']:+.1%})")


if __name__ == "__main__":
    main()
