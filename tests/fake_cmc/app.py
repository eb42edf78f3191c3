"""A fake CoinMarketCap Pro API over HTTP, faithful to CoinMarketCap's API documentation
(coinmarketcap.com/api/documentation/v1).

Serves `/v2/cryptocurrency/quotes/latest` (symbol lists per symbol, id-keyed objects, one
convert per call as on the Basic plan, `skip_invalid`), `/v1/fiat/map` and `/v1/key/info`, with
CoinMarketCap's auth and error bodies. It enforces a plan as that documentation says (calls per
minute: 429/1008; credits per day and month: 429/1009/1010; quotes cost ceil(coins/100), at least
1, plus one per extra convert; fiat/map 1; key/info 0 but it counts against the minute; errors
cost nothing), unlimited unless configured. Control endpoints under `/__fake__/` count calls,
change prices and the plan, script failures and inject limit verdicts.
"""

from __future__ import annotations

import math
import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import simplejson
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.fake_cmc.market import FIAT_IDS, LIMIT_MESSAGES, Failure, FakeCoin, Market

QUOTES_PARAMS = {"id", "slug", "symbol", "convert", "convert_id", "aux", "skip_invalid"}
_SYMBOLS_RE = re.compile(r"[0-9A-Za-z$@-]+(,[0-9A-Za-z$@-]+)*")
_IDS_RE = re.compile(r"\d+(,\d+)*")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status(error_code: int = 0, message: str | None = None, credits: int = 0) -> dict[str, Any]:
    status = {
        "timestamp": _iso(_now()),
        "error_code": error_code,
        "error_message": message,
        "elapsed": 0,
        "credit_count": credits,
    }
    if error_code == 0:
        status["notice"] = None
    return status


def _json(body: Any, http: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(simplejson.dumps(body, use_decimal=True), http, headers or {},
                    mimetype="application/json")


def _error(http: int, code: int, message: str) -> Response:
    return _json({"status": _status(code, message)}, http)


def _limit(code: int) -> Response:
    return _error(429, code, LIMIT_MESSAGES.get(code, "Rate limit reached."))


def _failure_response(failure: Failure) -> Response:
    if failure.delay:
        time.sleep(failure.delay)
    headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
    if failure.body == "html":
        html = f"<html><body><h1>{failure.status} Bad Gateway</h1></body></html>"
        return Response(html, failure.status, headers, mimetype="text/html")
    if failure.body == "malformed":
        return Response('{"status": {"error_code": 0, "data": [', failure.status, headers,
                        mimetype="application/json")
    return _json({"status": _status(failure.error_code or failure.status, failure.message)},
                 failure.status, headers)


def _quote(coin: FakeCoin, currency: str, market: Market, minute: str) -> dict[str, Any] | None:
    unit = market.usd_value(currency)
    if unit is None or unit == 0:
        return None
    factor = Decimal(1) / unit
    price = coin.price_usd * factor
    market_cap = coin.price_usd * coin.circulating_supply * factor
    fdmc_supply = coin.max_supply or coin.total_supply
    return {
        "price": price,
        "volume_24h": coin.volume_24h_usd * factor,
        "volume_change_24h": Decimal("-3.12"),
        "percent_change_1h": Decimal("0.12"),
        "percent_change_24h": coin.percent_change_24h,
        "percent_change_7d": Decimal("4.21"),
        "percent_change_30d": Decimal("9.73"),
        "percent_change_60d": Decimal("12.4"),
        "percent_change_90d": Decimal("18.9"),
        "market_cap": market_cap if coin.is_active else Decimal("0.0"),
        "market_cap_dominance": Decimal("1.5") if coin.is_active else Decimal("0.0"),
        "fully_diluted_market_cap": coin.price_usd * fdmc_supply * factor,
        "tvl": None,
        "last_updated": minute,
    }


def _coin_object(coin: FakeCoin, currency: str, market: Market, minute: str) -> dict[str, Any]:
    return {
        "id": coin.id,
        "name": coin.name,
        "symbol": coin.symbol,
        "slug": coin.slug,
        "num_market_pairs": coin.num_market_pairs,
        "date_added": coin.date_added,
        "tags": [{"slug": "mineable", "name": "Mineable", "category": "OTHERS"}]
        if coin.is_active else [],
        "max_supply": coin.max_supply,
        "circulating_supply": coin.circulating_supply,
        "total_supply": coin.total_supply,
        "is_active": coin.is_active,
        "infinite_supply": coin.max_supply is None,
        "platform": None,
        "cmc_rank": coin.cmc_rank,
        "is_fiat": 0,
        "self_reported_circulating_supply": None,
        "self_reported_market_cap": None,
        "tvl_ratio": None,
        "last_updated": minute,
        "quote": {currency: _quote(coin, currency, market, minute)},
    }


def create_fake_app(market: Market) -> Flask:
    """The fake CoinMarketCap as a Flask app over `market`."""
    app = Flask("fake_cmc")

    def authenticate() -> Response | None:
        key = request.headers.get("X-CMC_PRO_API_KEY") or request.args.get("CMC_PRO_API_KEY")
        if not key:
            return _error(401, 1002, "API key missing.")
        if key != market.api_key:
            return _error(401, 1001, "This API Key is invalid.")
        return None

    @app.get("/v2/cryptocurrency/quotes/latest")
    def quotes_latest() -> Response:
        call = market.record(request.path, request.args.items(multi=True))
        if (denied := authenticate()) is not None:
            return denied
        if (refused := market.admit_call()) is not None:
            return _limit(refused)
        if (failure := market.next_failure()) is not None:
            return _failure_response(failure)
        if market.latency:
            time.sleep(market.latency)
        args = request.args
        for name in args:
            if name not in QUOTES_PARAMS and name != "CMC_PRO_API_KEY":
                return _error(400, 400, f'"{name}" is not allowed')
        given = [k for k in ("id", "slug", "symbol") if k in args]
        if not given:
            return _error(400, 400, '"value" must contain at least one of [id, symbol, slug]')
        if len(given) > 1:
            return _error(400, 400, '"value" contains a conflict between exclusive peers [id, symbol, slug]')

        converts = [c for c in args.get("convert", "USD").split(",") if c]
        if len(converts) > 1:
            return _error(400, 400, "Your plan is limited to 1 convert options")
        currency = converts[0] if converts else "USD"
        if market.usd_value(currency) is None:
            return _error(400, 400, f'Invalid value for "convert": "{currency}"')
        skip_invalid = args.get("skip_invalid", "true").lower() != "false"
        minute = _iso(_now().replace(second=0, microsecond=0))

        data: dict[str, Any] = {}
        invalid: list[str] = []
        if "symbol" in args:
            raw = args["symbol"]
            if not _SYMBOLS_RE.fullmatch(raw):
                return _error(400, 400, '"symbol" must be a valid symbol list')
            for symbol in raw.split(","):
                coins = market.by_symbol(symbol)
                if coins:
                    data[symbol] = [_coin_object(c, currency, market, minute) for c in coins]
                else:
                    invalid.append(symbol)
            field_name = "symbol"
        elif "id" in args:
            if not _IDS_RE.fullmatch(args["id"]):
                return _error(400, 400, 'Invalid value for "id"')
            for raw_id in args["id"].split(","):
                coin = market.by_id(int(raw_id))
                if coin is None:
                    invalid.append(raw_id)
                else:
                    data[raw_id] = _coin_object(coin, currency, market, minute)
            field_name = "id"
        else:
            return _error(400, 400, '"slug" is not supported by this fake')

        if invalid and (not skip_invalid or not data):
            if len(invalid) == 1:
                return _error(400, 400, f'Invalid value for "{field_name}": "{invalid[0]}"')
            return _error(400, 400, f'Invalid values for "{field_name}": "{",".join(invalid)}"')
        coins_returned = sum(len(v) if isinstance(v, list) else 1 for v in data.values())
        credits = max(1, math.ceil(coins_returned / 100)) + (len(converts) - 1 if converts else 0)
        if (refused := market.charge(credits)) is not None:
            return _limit(refused)
        market.answered(call, currency, list(data))
        return _json({"status": _status(credits=credits), "data": data})

    @app.get("/v1/fiat/map")
    def fiat_map() -> Response:
        market.record(request.path, request.args.items(multi=True))
        if (denied := authenticate()) is not None:
            return denied
        if (refused := market.admit_call()) is not None or (refused := market.charge(1)) is not None:
            return _limit(refused)
        data = [{"id": FIAT_IDS.get(s, 0), "name": s, "sign": "", "symbol": s} for s in market.fiat_usd]
        return _json({"status": _status(credits=1), "data": data})

    @app.get("/v1/key/info")
    def key_info() -> Response:
        market.record(request.path, request.args.items(multi=True))
        if (denied := authenticate()) is not None:
            return denied
        # Free, but a call like any other for the per-minute limit (the documentation's "Key Info").
        if (refused := market.admit_call(free=True)) is not None:
            return _limit(refused)
        usage = market.usage()
        return _json({"status": _status(), "data": {"plan": usage["plan"], "usage": usage["usage"]}})

    # -- control endpoints (not part of CoinMarketCap) ---------------------------------------

    @app.get("/__fake__/calls")
    def calls() -> Response:
        with market.lock:
            return _json({"calls": list(market.calls)})

    @app.delete("/__fake__/calls")
    def clear_calls() -> Response:
        with market.lock:
            market.calls.clear()
        return _json({"ok": True})

    @app.post("/__fake__/prices")
    def set_prices() -> Response:
        market.set_prices(request.get_json(force=True))
        return _json({"ok": True})

    @app.post("/__fake__/failures")
    def add_failure() -> Response:
        with market.lock:
            market.failures.append(Failure(**request.get_json(force=True)))
        return _json({"ok": True})

    @app.delete("/__fake__/failures")
    def clear_failures() -> Response:
        with market.lock:
            market.failures.clear()
        return _json({"ok": True})

    @app.post("/__fake__/latency")
    def set_latency() -> Response:
        market.latency = float(request.get_json(force=True)["seconds"])
        return _json({"ok": True})

    @app.post("/__fake__/plan")
    def set_plan() -> Response:
        body = request.get_json(force=True)
        market.set_plan(**{k: body[k] for k in ("daily_credits", "monthly_credits", "calls_per_minute")
                           if k in body})
        return _json({"ok": True})

    @app.get("/__fake__/usage")
    def usage() -> Response:
        return _json(market.usage())

    @app.post("/__fake__/verdict")
    def inject_verdict() -> Response:
        body = request.get_json(force=True)
        market.inject_verdict(int(body["error_code"]), float(body["seconds"]))
        return _json({"ok": True})

    @app.post("/__fake__/reset")
    def reset() -> Response:
        market.reset()
        return _json({"ok": True})

    return app


class HeaderKeepingHandler(WSGIRequestHandler):
    """Werkzeug's dev server drops headers with underscores; CoinMarketCap's key header has them."""

    def make_environ(self):
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ["HTTP_" + key.upper().replace("-", "_")] = value
        return environ


class QuietHandler(HeaderKeepingHandler):
    """The same, without an access-log line per request (keeps test output readable)."""

    def log_request(self, *args, **kwargs):
        pass


class FakeCmcServer:
    """The fake served over real HTTP on a loopback port, in a background thread."""

    def __init__(self, market: Market | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.market = market or Market()
        self._server = make_server(host, port, create_fake_app(self.market), threaded=True,
                                   request_handler=QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeCmcServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def quote_calls(self) -> list[dict[str, Any]]:
        with self.market.lock:
            return [c for c in self.market.calls if c["path"].endswith("quotes/latest")]
