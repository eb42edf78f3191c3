"""Run the fake CoinMarketCap: `python -m tests.fake_cmc --port 8001 [--api-key KEY] [plan flags]`.

With no key given it accepts CoinMarketCap's public sandbox key, which is what coinquote sends
when CMC_API_KEY is unset, so `CMC_BASE_URL=http://127.0.0.1:8001 make run` works offline.
The plan flags (`--daily-credits`, `--monthly-credits`, `--calls-per-minute`) make it enforce a
CoinMarketCap plan; unlimited when not given.
"""

from __future__ import annotations

import argparse

from werkzeug.serving import run_simple

from src.adapters.coinmarketcap import SANDBOX_KEY
from tests.fake_cmc.app import HeaderKeepingHandler, create_fake_app
from tests.fake_cmc.market import Market, Plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--api-key", default=SANDBOX_KEY)
    parser.add_argument("--daily-credits", type=int, help="credits per UTC day (default: unlimited)")
    parser.add_argument("--monthly-credits", type=int, help="credits per UTC month (default: unlimited)")
    parser.add_argument("--calls-per-minute", type=int, help="calls per minute (default: unlimited)")
    args = parser.parse_args()
    plan = Plan(daily_credits=args.daily_credits, monthly_credits=args.monthly_credits,
                calls_per_minute=args.calls_per_minute)
    run_simple(args.host, args.port, create_fake_app(Market(api_key=args.api_key, plan=plan)),
               threaded=True, request_handler=HeaderKeepingHandler)


if __name__ == "__main__":
    main()
