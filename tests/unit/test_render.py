"""The assembled response body equals the full response schema's output, field for field."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
import simplejson

from src.domain.model import Coin, CoinQuote, Quote, QuoteAnswer, ServedQuote, Source
from src.entrypoints.http.quotes.render import QuoteRenderer
from src.entrypoints.http.quotes.schemas import QuotesResponseSchema
from tests.fakes import T0, coin_quote

FULL = CoinQuote(
    coin=Coin(id=1, name='Bit "coin" \\ ü', symbol="BTC", slug="bitcoin", cmc_rank=1, is_active=True,
              num_market_pairs=11842, circulating_supply=Decimal("19712543"),
              total_supply=Decimal("19712543.000000001"), max_supply=Decimal("21000000"),
              date_added=T0 - timedelta(days=5000), last_updated=T0),
    quote=Quote(currency="USD", price=Decimal("67250.123456789012345678"), last_updated=T0,
                volume_24h=Decimal("28514220110.4"), volume_change_24h=Decimal("-3.12"),
                market_cap=Decimal("1.3256708822551600E+12"), percent_change_90d=None),
    fetched_at=T0,
)
SPARSE = CoinQuote(coin=Coin(id=646, name="Ethercoin", symbol="ETC", slug="ethercoin", cmc_rank=None,
                             is_active=False),
                   quote=Quote(currency="USD", price=Decimal("0.000212"), last_updated=T0), fetched_at=T0)


def reference(answer: QuoteAnswer) -> dict:
    """The body through QuotesResponseSchema, the documented 200 schema, in one piece."""
    def coin(served: ServedQuote) -> dict:
        quotes = {served.coin_quote.quote.currency: served.coin_quote.quote}
        if served.converted is not None:
            quotes[served.converted.currency] = served.converted
        fields = ("id", "name", "symbol", "slug", "cmc_rank", "is_active", "num_market_pairs",
                  "circulating_supply", "total_supply", "max_supply", "date_added", "last_updated")
        return {**{f: getattr(served.coin_quote.coin, f) for f in fields}, "source": served.source.value,
                "stale": served.stale, "quote": quotes}

    body = {"data": {s: coin(q) for s, q in answer.quotes.items()}, "unknown_symbols": list(answer.unknown_symbols)}
    return simplejson.loads(simplejson.dumps(QuotesResponseSchema().dump(body), use_decimal=True), use_decimal=True)


ANSWERS = [
    QuoteAnswer({"BTC": ServedQuote(FULL, Source.CACHE)}),
    QuoteAnswer({"BTC": ServedQuote(FULL, Source.PROVIDER), "ETC": ServedQuote(SPARSE, Source.DATABASE, stale=True)},
                ("NOPE", "NADA")),
    QuoteAnswer({"BTC": ServedQuote(FULL, Source.CACHE, converted=replace(FULL.quote, currency="EUR",
                                                                          price=Decimal("62268.6296")))}),
    QuoteAnswer({"BTC": ServedQuote(FULL, Source.CACHE, converted=FULL.quote)}),  # convert=USD
    QuoteAnswer({f"S{i}": ServedQuote(coin_quote(f"S{i}", i, f"{i}.5"), Source.DATABASE) for i in range(60)}),
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_rendered_body_equals_the_schema_output(answer):
    renderer = QuoteRenderer()

    first = renderer.render(answer)
    again = renderer.render(answer)  # from the memo this time

    assert first == again
    parsed = simplejson.loads(first, use_decimal=True)
    assert parsed == reference(answer)
    assert list(parsed["data"]) == list(answer.quotes)


def test_equal_objects_share_a_fragment_and_a_bounded_memo_stays_correct():
    renderer = QuoteRenderer(max_entries=3)
    answers = [QuoteAnswer({f"S{i}": ServedQuote(coin_quote(f"S{i}", i, f"{i}.25"), Source.DATABASE)})
               for i in range(10)]

    for answer in answers * 2:
        assert simplejson.loads(renderer.render(answer), use_decimal=True) == reference(answer)
