"""Conversions: each served coin's quote in another currency, in one provider call by coin id.

Never cached or stored (README "The retrieval rules"); identical conversions in flight in one
process share one call; whether a currency exists is remembered in the cache (a day when it
does, an hour when it does not), so an unknown one costs no call when repeated.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from src.domain.deadline import Deadline
from src.domain.errors import InvalidCurrency, ProviderTimeout
from src.domain.model import Purpose, Quote, ServedQuote
from src.domain.single_flight import SingleFlight
from src.domain.spending import paid_call

if TYPE_CHECKING:
    from src.domain.service import QuoteService

logger = logging.getLogger(__name__)

_PROBE_COIN_ID = 1  # Bitcoin: a conversion of it tells whether a currency exists


class Conversions:
    """The conversion step of a QuoteService, over its provider, cache and governor."""

    def __init__(self, service: QuoteService) -> None:
        self.service = service
        self._flights: SingleFlight[dict[int, Quote]] = SingleFlight()

    def remembered(self, currency: str) -> bool | None:
        """Whether `currency` is remembered as valid (None: not remembered); raise
        InvalidCurrency when it is remembered as unknown."""
        known = self.service.cache.currency_known(currency)
        if known is False:
            raise InvalidCurrency(f"unknown convert currency {currency}")
        return known

    def learn(self, currency: str, deadline: Deadline) -> None:
        """Find out (and remember) whether `currency` exists; raise InvalidCurrency if not."""
        self._convert_ids((_PROBE_COIN_ID,), currency, None, deadline)

    def convert(self, quotes: dict[str, ServedQuote], currency: str,
                currency_known: bool | None, deadline: Deadline) -> dict[str, ServedQuote]:
        """Each coin's quote in `currency`, in one call; a coin the answer lacks keeps None."""
        coin_ids = tuple(dict.fromkeys(q.coin_quote.coin.id for q in quotes.values()))
        converted = self._convert_ids(coin_ids, currency, currency_known, deadline)
        missing = [s for s, q in quotes.items() if q.coin_quote.coin.id not in converted]
        if missing:
            logger.warning("no %s quote for %s in the conversion answer", currency,
                           ",".join(missing))
        return {s: replace(q, converted=converted.get(q.coin_quote.coin.id))
                for s, q in quotes.items()}

    def _convert_ids(self, coin_ids: tuple[int, ...], currency: str, currency_known: bool | None,
                     deadline: Deadline) -> dict[int, Quote]:
        """One conversion call; whether `currency` exists is remembered from its answer."""
        service = self.service
        try:
            converted = self._call_ids(coin_ids, currency, deadline)
        except InvalidCurrency:
            service.cache.remember_currency(currency, False, service.unknown_currency_ttl_seconds)
            raise
        if not currency_known:
            service.cache.remember_currency(currency, True, service.known_currency_ttl_seconds)
        return converted

    def _call_ids(self, coin_ids: tuple[int, ...], currency: str,
                  deadline: Deadline) -> dict[int, Quote]:
        """The only place a conversion calls the provider (the service's `_call_symbols` is the
        other call): one call, shared by the identical conversions in flight in this process."""
        if deadline.expired:
            raise ProviderTimeout("CoinMarketCap did not answer in time")

        def call() -> dict[int, Quote]:
            return paid_call(self.service.governor, Purpose.CONVERT, len(coin_ids), lambda: (
                self.service.provider.fetch_by_ids(coin_ids, currency, deadline=deadline))).quotes

        return self._flights.run((coin_ids, currency), call, deadline.remaining())
