"""The quotes response as JSON text, assembled from each coin's serialised form.

Every fragment is produced once by the marshmallow schemas that document the response (so
the payload stays exactly what the OpenAPI document says) and reused while an equal domain
object is served: a cache hit returns the very objects it returned before (the cache adapter
memoises its decoding), so a hit costs no schema work and no JSON encoding.
"""

from __future__ import annotations

import threading
from typing import Any

import simplejson

from src.domain.model import Coin, CoinQuote, Quote, QuoteAnswer, ServedQuote, Source
from src.entrypoints.http.quotes.schemas import CoinQuoteSchema, MarketQuoteSchema

_COIN_FIELDS = (
    "id", "name", "symbol", "slug", "cmc_rank", "is_active", "num_market_pairs",
    "circulating_supply", "total_supply", "max_supply", "date_added", "last_updated",
)
_STALE = {False: "false", True: "true"}


def _json(data: Any) -> str:
    return simplejson.dumps(data, use_decimal=True, separators=(",", ":"))


class _Memo:
    """Fragments by object identity (a cache hit returns the same objects), then by value
    (a database hit returns equal new ones). The object is kept, so an id is never reused."""

    def __init__(self, render, max_entries: int) -> None:
        self._render = render
        self._by_id: dict[int, tuple[object, str]] = {}
        self._by_value: dict[object, str] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def __call__(self, obj: object) -> str:
        entry = self._by_id.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        text = self._by_value.get(obj)
        if text is None:
            text = self._render(obj)
        with self._lock:
            if len(self._by_id) >= self._max_entries or len(self._by_value) >= self._max_entries:
                self._by_id.clear()  # simple bound: the hot set refills at once
                self._by_value.clear()
            self._by_id[id(obj)] = (obj, text)
            self._by_value[obj] = text
        return text


class QuoteRenderer:
    """Renders a QuoteAnswer as the response body of GET /api/v1/quotes."""

    def __init__(self, max_entries: int = 4_096) -> None:
        coin_schema = CoinQuoteSchema(only=_COIN_FIELDS)
        self._quote_schema = MarketQuoteSchema()
        # `{"id":1,...}` without its braces, so source, stale and quote can follow.
        self._coin = _Memo(lambda coin: _json(coin_schema.dump(_coin_data(coin)))[1:-1],
                           max_entries)
        self._quote = _Memo(self._render_quote, max_entries)

    def _render_quote(self, quote: Quote) -> str:
        return _json(self._quote_schema.dump(quote))

    def render(self, answer: QuoteAnswer) -> str:
        coins = ",".join(self._render_coin(symbol, served, answer.convert)
                         for symbol, served in answer.quotes.items())
        unknown = ",".join(f'"{symbol}"' for symbol in answer.unknown_symbols)
        if answer.convert is None:
            return f'{{"data":{{{coins}}},"unknown_symbols":[{unknown}]}}'
        unconverted = ",".join(f'"{symbol}"' for symbol in answer.unconverted_symbols)
        return (f'{{"data":{{{coins}}},"unknown_symbols":[{unknown}],'
                f'"unconverted_symbols":[{unconverted}]}}')

    def render_cached(self, symbol: str, coin_quote: CoinQuote) -> str:
        """The body of the answer to a request for `symbol` alone served from the cache
        (what nginx's fast path serves in its place: it must be the same bytes)."""
        return self.render(QuoteAnswer(quotes={symbol: ServedQuote(coin_quote, Source.CACHE)}))

    def _render_coin(self, symbol: str, served: ServedQuote, convert: str | None) -> str:
        # Symbols and currency codes are [A-Z0-9] by construction: no escaping is needed.
        base = served.coin_quote.quote
        quotes = f'"{base.currency}":{self._quote(base)}'
        converted = served.converted
        if converted is not None and converted.currency != base.currency:
            quotes += f',"{converted.currency}":{self._render_quote(converted)}'
        elif converted is None and convert is not None:
            # Asked for, but the conversion answer had no quote for this coin: say so.
            quotes += f',"{convert}":null'
        return (
            f'"{symbol}":{{{self._coin(served.coin_quote.coin)},"source":"{served.source.value}",'
            f'"stale":{_STALE[served.stale]},"quote":{{{quotes}}}}}'
        )


def _coin_data(coin: Coin) -> dict[str, Any]:
    return {name: getattr(coin, name) for name in _COIN_FIELDS}

