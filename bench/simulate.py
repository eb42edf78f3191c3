"""A compressed day: a CoinMarketCap plan, mixed traffic, refresh-ahead; credits, freshness, waits.

Time runs `--speed` times faster than real (default 60: one real second is one simulated
minute), so every setting that is a duration is divided by it: QUOTE_MAX_AGE_SECONDS 300 -> 5,
CACHE_TTL_SECONDS 60 -> 1, REFRESH_WINDOW_SECONDS 900 -> 15, 30 calls a minute -> 30 a second.
`--hours` simulated hours are run (default 6: 360 real seconds), so the credits of that part of
the day are the budget: CMC_DAILY_CREDITS is the plan's N times hours/24, and the fake
CoinMarketCap enforces the same figures (it answers 1008/1009 beyond them). The refresh interval
is what the governor derives for a whole day of the plan (never below 60 s), scaled; it is set
explicitly because the governor would otherwise spread the credits over the real rest of the day.

The day starts warm (the hot set fetched once, in one call, counted). Traffic (seeded): 92 % the
hot set, SYN1..SYN50, 1-3 symbols a request, Zipf-weighted; 3 % a long tail of other synthetic
coins, Zipf-weighted; 5 % conversions (`convert=EUR`) of hot coins; and a burst
at several times the rate for 3 s every simulated half hour. The fake's prices encode when it
answered (price = n * 1e6 + seconds since start), so the age of every price served is known.

    python -m bench.simulate [--daily-credits 333] [--convert-share 0.5] [--hours 6] [--rate 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import requests

from src.domain.spending import BudgetDay, SpendingPolicy, Spent, call_cost
from tests.fake_cmc.app import FakeCmcServer
from tests.fake_cmc.market import Market, Plan, synthetic_coin
from tests.servers import Memcached, Postgres, free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "simulate-key-not-secret"
DAY = 86_400
SCALE = Decimal(1_000_000)
HOT = 50
TAIL_FIRST = 1001
HOT_SET = ",".join(f"SYN{n}" for n in range(1, HOT + 1))


class DriftingMarket(Market):
    """The fake CoinMarketCap whose synthetic coins' prices say when they were answered."""

    def __init__(self, started: float, day_seconds: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.started = started
        self.day_seconds = day_seconds

    def _daily_reset(self, now: float) -> float:
        # The compressed day ends with the run: key info says so, and the governor spreads what
        # refresh-ahead needs over what is left of it.
        return self.started + self.day_seconds if self.day_seconds else super()._daily_reset(now)

    def by_symbol(self, symbol: str):
        found = super().by_symbol(symbol)
        if found and found[0].symbol.startswith("SYN"):
            n = int(found[0].symbol[3:])
            coin = synthetic_coin(n)
            coin.price_usd = n * SCALE + Decimal(f"{time.time() - self.started:.3f}")
            return [coin]
        return found


@dataclass
class Tally:
    requests: int = 0
    waited: int = 0  # a coin came from CoinMarketCap for this request, or it was a conversion
    hot_base_requests: int = 0
    hot_base_waited: int = 0
    stale_answers: int = 0
    hot_answers: int = 0  # hot coins served in base-currency requests
    hot_fresh: int = 0  # of them, not stale and within the bound as measured
    converted: int = 0  # conversions answered
    budget_503: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    oldest_fresh_hot: float = 0.0  # real seconds
    max_age: float = 5.0  # real seconds: the bound, QUOTE_MAX_AGE_SECONDS as run
    oldest_detail: dict = field(default_factory=dict)
    sources: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def zipf_choice(rng: random.Random, n: int, s: float = 1.1) -> int:
    """1..n, rank r with weight 1/r^s."""
    weights = [1 / (r ** s) for r in range(1, n + 1)]
    return rng.choices(range(1, n + 1), weights=weights)[0]


def derived_interval(daily_credits: int, convert_share: float, symbols: int,
                     max_age_seconds: float = 300) -> float:
    """The governor's refresh interval at the start of a day of this plan, nothing spent yet
    (src/domain/spending.py)."""
    policy = SpendingPolicy(daily_credits, 30, convert_share, max_age_seconds)
    return policy.refresh_interval(Spent(), BudgetDay(seconds_gone=0, seconds_left=DAY), symbols)


def run_interval(budget: int, seconds: float, symbols: int) -> float:
    """Seconds between rounds in a run of `seconds` with `budget` credits, nothing spent yet."""
    policy = SpendingPolicy(budget, 30)
    rounds = max(1, (budget - policy.request_reserve) // call_cost(symbols))
    return max(1.0, math.floor(seconds / rounds * 100) / 100)


def plan_requests(rng: random.Random, seconds: float, rate: float, speed: float,
                  tail: int) -> list[tuple[float, str, str | None, str]]:
    """(start offset, symbols, convert, kind) for the whole run, bursts included."""
    burst_every = 1800 / speed  # every simulated half hour
    planned, t = [], 0.0
    while t < seconds:
        in_burst = (t % burst_every) < 3 and t >= burst_every
        t += rng.expovariate(rate * (5 if in_burst else 1))
        roll = rng.random()
        if roll < 0.92:
            count = rng.choice((1, 1, 2, 3))
            symbols = sorted({f"SYN{zipf_choice(rng, HOT)}" for _ in range(count)})
            planned.append((t, ",".join(symbols), None, "hot"))
        elif roll < 0.95:  # 3 %: the long tail
            planned.append((t, f"SYN{TAIL_FIRST + zipf_choice(rng, tail) - 1}", None, "tail"))
        else:
            planned.append((t, f"SYN{zipf_choice(rng, HOT)}", "EUR", "convert"))
    return planned


def ask(session: requests.Session, url: str, symbols: str, convert: str | None, kind: str,
        origin: float, tally: Tally) -> None:
    """One request; `origin` is the moment the fake's prices count from."""
    params = {"symbol": symbols, **({"convert": convert} if convert else {})}
    # Ages are taken as of sending: the service judged freshness somewhere between sending and
    # receiving, so this never charges it with the answer's own transit time.
    sent = time.time() - origin
    try:
        response = session.get(url + "/api/v1/quotes", params=params, timeout=30)
    except requests.RequestException as exc:
        with tally.lock:
            tally.requests += 1
            tally.errors[type(exc).__name__] += 1
        return
    with tally.lock:
        tally.requests += 1
        if response.status_code == 503 and "credit budget" in response.text:
            tally.budget_503[kind] += 1
            return
        if response.status_code != 200:
            tally.errors[f"{response.status_code} {response.json().get('message', '')[:60]}"] += 1
            return
        data = json.loads(response.text, parse_float=Decimal)["data"]
        tally.converted += convert is not None
        waited = convert is not None or any(c["source"] == "provider" for c in data.values())
        tally.waited += waited
        if kind == "hot":
            tally.hot_base_requests += 1
            tally.hot_base_waited += waited
        for symbol, coin in data.items():
            tally.sources[coin["source"]] += 1
            tally.hot_answers += kind == "hot"
            if coin.get("stale"):
                tally.stale_answers += 1
            elif kind == "hot":
                n = int(symbol[3:])
                answered_at = float(Decimal(str(coin["quote"]["USD"]["price"])) - n * SCALE)
                tally.hot_fresh += sent - answered_at <= tally.max_age
                if sent - answered_at > tally.oldest_fresh_hot:
                    tally.oldest_fresh_hot = sent - answered_at
                    tally.oldest_detail = {"symbol": symbol, "source": coin["source"],
                                           "sent": round(sent, 3),
                                           "received": round(time.time() - origin, 3),
                                           "answered_at": round(answered_at, 3)}


def spawn(args: list[str], env: dict[str, str], log: Path,
          port: int | None = None) -> subprocess.Popen:
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log, "wb"),
                               stderr=subprocess.STDOUT)
    if port is not None:
        wait_for_port(port, 60, process)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daily-credits", type=int, default=333,
                        help="the plan's credits per day (N)")
    parser.add_argument("--calls-per-minute", type=int, default=30)
    parser.add_argument("--convert-share", type=float, default=0.5)
    parser.add_argument("--speed", type=float, default=60, help="simulated seconds per real second")
    parser.add_argument("--hours", type=float, default=6, help="simulated hours to run")
    parser.add_argument("--rate", type=float, default=10,
                        help="requests per real second outside bursts")
    parser.add_argument("--tail", type=int, default=200, help="symbols in the long tail")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "simulate.json"))
    parser.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--day-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.started, args.daily_credits, args.calls_per_minute,
                   args.day_seconds)
        return

    # Stopped with SIGTERM, the run still stops what it started (the finally below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    speed = args.speed
    seconds = args.hours * 3600 / speed
    budget = math.floor(args.daily_credits * args.hours / 24)
    window_symbols = HOT + min(args.tail, 20)  # the hot set and the tail's recent few
    interval_day = derived_interval(args.daily_credits, args.convert_share, window_symbols)
    settings = {
        "CMC_DAILY_CREDITS": budget,
        "CMC_CALLS_PER_MINUTE": round(args.calls_per_minute * speed),
        "CONVERT_CREDIT_SHARE": args.convert_share,
        "QUOTE_MAX_AGE_SECONDS": max(1, round(300 / speed)),
        "CACHE_TTL_SECONDS": max(1, round(60 / speed)),
        "REFRESH_WINDOW_SECONDS": max(1, round(900 / speed)),
        # The governor's derivation for the compressed day itself (its credits beyond the request
        # reserve spread over the run; its 60 s floor is not scaled), rounded down to 10 ms.
        "REFRESH_INTERVAL_SECONDS": run_interval(budget, seconds, window_symbols),
    }
    print(f"simulating {args.hours:g} h of a {args.daily_credits}-credit day in {seconds:.0f} s:"
          f" budget {budget} credits; derived interval {interval_day:.0f} s a day;"
          f" settings {settings}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="coinquote-simulate-"))
    postgres, memcached = Postgres().start(), Memcached().start()
    started = time.time()
    processes: list[subprocess.Popen] = []
    try:
        # Its own process: in this one, the client threads would hold the GIL between the
        # moment a price is made and the moment CoinMarketCap's timestamp is taken.
        fake_port = free_port()
        processes.append(spawn([sys.executable, "-m", "bench.simulate", "--serve-fake",
                                str(fake_port), "--started", repr(started),
                                "--daily-credits", str(budget),
                                "--calls-per-minute", str(settings["CMC_CALLS_PER_MINUTE"]),
                                "--day-seconds", repr(seconds)],
                               dict(os.environ), workdir / "fake.log", fake_port))
        fake_url = f"http://127.0.0.1:{fake_port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GUNICORN_", "CMC_", "REFRESH_", "QUOTE_", "CACHE_",
                                    "CONVERT_"))}
        env.update({k: str(v) for k, v in settings.items()})
        env.update(CMC_API_KEY=KEY, CMC_BASE_URL=fake_url, DATABASE_URL=postgres.url,
                   MEMCACHED_SERVERS=memcached.address, PYTHONUNBUFFERED="1", LOG_LEVEL="warning",
                   GUNICORN_WORKERS=str(args.workers))
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                       env=env, check=True, capture_output=True)
        port = free_port()
        processes.append(spawn([sys.executable, "-m", "gunicorn", "wsgi:app"],
                               {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
                               workdir / "gunicorn.log", port))
        processes.append(spawn([sys.executable, "-m", "flask", "--app", "wsgi", "refresh"],
                               {**env, "LOG_LEVEL": "info"}, workdir / "refresher.log"))
        url = f"http://127.0.0.1:{port}"
        # The day starts warm: yesterday's hot set is known (one batched call, counted).
        requests.get(url + "/api/v1/quotes", params={"symbol": HOT_SET},
                     timeout=30).raise_for_status()
        tally = run_traffic(url, plan_requests(random.Random(args.seed), seconds, args.rate, speed,
                                               args.tail), origin=started, tally=Tally())
        usage = requests.get(url + "/usage", timeout=10).json()
        fake_usage = requests.get(fake_url + "/__fake__/usage", timeout=10).json()
        spent = fake_usage["usage"]["current_day"]["credits_used"]
        refused = fake_usage["refused"]
    finally:
        for process in reversed(processes):
            stop(process)
        memcached.close()
        postgres.close()

    rounds = [line for line in (workdir / "refresher.log").read_text(errors="replace").splitlines()
              if "refresh round:" in line]
    refresh_calls = sum(int(line.split(" in ")[1].split(" call")[0]) for line in rounds)
    report = {
        "plan": {"daily_credits": args.daily_credits, "convert_share": args.convert_share,
                 "simulated_hours": args.hours, "speed": speed, "real_seconds": round(seconds)},
        "settings": settings,
        "credits_spent": spent, "credits_budget": budget,
        "credits_spent_share": round(spent / budget, 3) if budget else None,
        "coinquote_usage": usage.get("today"),
        "refused_by_coinmarketcap": refused,
        "refresh_rounds": len(rounds),
        "refresh_calls": refresh_calls,
        "requests": tally.requests,
        "waited_share": round(tally.waited / max(1, tally.requests), 4),
        "hot_waited_share": round(tally.hot_base_waited / max(1, tally.hot_base_requests), 4),
        "oldest_fresh_hot_real_seconds": round(tally.oldest_fresh_hot, 2),
        "oldest_fresh_hot_simulated_seconds": round(tally.oldest_fresh_hot * speed),
        "oldest_fresh_hot_detail": tally.oldest_detail,
        "quote_max_age_simulated_seconds": settings["QUOTE_MAX_AGE_SECONDS"] * speed,
        "stale_answers": tally.stale_answers,
        "hot_answers": tally.hot_answers,
        "conversions_answered": tally.converted,
        "usage_equals_fake": (usage.get("today") or {}).get("credits_used") == spent,
        "hot_fresh_share": round(tally.hot_fresh / max(1, tally.hot_answers), 4),
        "budget_503": dict(tally.budget_503),
        "errors": dict(tally.errors),
        "sources": dict(tally.sources),
        "logs": str(workdir),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print_table(report)


def serve_fake(port: int, started: float, daily_credits: int, calls_per_minute: int,
               day_seconds: float | None = None) -> None:
    """The drifting fake CoinMarketCap, enforcing the run's plan, until terminated."""
    market = DriftingMarket(started, day_seconds, api_key=KEY,
                            plan=Plan(daily_credits=daily_credits,
                                      calls_per_minute=calls_per_minute))
    # Blocked before the server's thread starts, so that only sigwait receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    with FakeCmcServer(market, port=port):
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


def run_traffic(url: str, planned: list, *, origin: float, tally: Tally) -> Tally:
    local = threading.local()
    started = time.time()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    with ThreadPoolExecutor(max_workers=32) as pool:
        for offset, symbols, convert, kind in planned:
            delay = started + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            pool.submit(lambda s=symbols, c=convert, k=kind:
                        ask(session(), url, s, c, k, origin, tally))
    return tally


def print_table(r: dict) -> None:
    print("\n| plan | credits spent / budget | request / refresh / convert | hot answers fresh"
          " | oldest fresh hot price (simulated) | waited for CMC (all / hot) | stale answers"
          " | conversions answered | 503 budget (by design) | errors | 1008/1009/1010 |"
          " /usage = fake |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    spent = (r["coinquote_usage"] or {}).get("by_purpose", {})
    print(f"| {r['plan']['daily_credits']}/day, convert share {r['plan']['convert_share']} |"
          f" {r['credits_spent']} / {r['credits_budget']} ({r['credits_spent_share']:.0%}) |"
          f" {spent.get('request')} / {spent.get('refresh')} / {spent.get('convert')} |"
          f" {r['hot_fresh_share']:.1%} of {r['hot_answers']} |"
          f" {r['oldest_fresh_hot_simulated_seconds']} s"
          f" (max {r['quote_max_age_simulated_seconds']:.0f} s) |"
          f" {r['waited_share']:.1%} / {r['hot_waited_share']:.1%} | {r['stale_answers']} |"
          f" {r['conversions_answered']} | {sum(r['budget_503'].values())} |"
          f" {sum(r['errors'].values())} | {sum(r['refused_by_coinmarketcap'].values())} |"
          f" {'yes' if r['usage_equals_fake'] else 'no'} |")

if __name__ == "__main__":
    main()
