"""Run the fake CoinMarketCap: `python -m tests.fake_cmc --port 8001 [--api-key KEY]`.

With no key given it accepts CoinMarketCap's public sandbox key, which is what coinquote sends
when CMC_API_KEY is unset, so `CMC_BASE_URL=http://127.0.0.1:8001 make run` works offline.
"""

from __future__ import annotations

import argparse

from werkzeug.serving import run_simple

from src.adapters.coinmarketcap import SANDBOX_KEY
from tests.fake_cmc.app import HeaderKeepingHandler, create_fake_app
from tests.fake_cmc.market import Market


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--api-key", default=SANDBOX_KEY)
    args = parser.parse_args()
    run_simple(args.host, args.port, create_fake_app(Market(api_key=args.api_key)), threaded=True,
               request_handler=HeaderKeepingHandler)


if __name__ == "__main__":
    main()
