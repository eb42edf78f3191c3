"""The fake CoinMarketCap's state: coins, fiat rates, the calls it received, scripted failures."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

TEST_KEY = "fake-cmc-test-key-0123456789abcdef"
SYNTHETIC_SYMBOL = re.compile(r"SYN(\d{1,6})")
SYNTHETIC_ID_BASE = 5_000_000


@dataclass
class FakeCoin:
    id: int
    name: str
    symbol: str
    slug: str
    price_usd: Decimal
    cmc_rank: int | None
    is_active: int = 1
    num_market_pairs: int = 100
    circulating_supply: Decimal = Decimal("1000000")
    total_supply: Decimal = Decimal("1000000")
    max_supply: Decimal | None = None
    date_added: str = "2015-01-01T00:00:00.000Z"
    volume_24h_usd: Decimal = Decimal("1000000.5")
    percent_change_24h: Decimal = Decimal("1.5")


def default_coins() -> list[FakeCoin]:
    """The coins the fake knows; ETC lists the dead Ethercoin first, as real v2 answers do."""
    return [
        FakeCoin(1, "Bitcoin", "BTC", "bitcoin", Decimal("67250.12"), 1, num_market_pairs=11842,
                 circulating_supply=Decimal("19712543"), total_supply=Decimal("19712543"),
                 max_supply=Decimal("21000000"), date_added="2010-07-13T00:00:00.000Z",
                 volume_24h_usd=Decimal("28514220110.4")),
        FakeCoin(1027, "Ethereum", "ETH", "ethereum", Decimal("3512.44"), 2, num_market_pairs=9731,
                 circulating_supply=Decimal("120214318.6"), total_supply=Decimal("120214318.6"),
                 date_added="2015-08-07T00:00:00.000Z", volume_24h_usd=Decimal("14220001500.2")),
        FakeCoin(825, "Tether USDt", "USDT", "tether", Decimal("1.0002"), 3),
        FakeCoin(1839, "BNB", "BNB", "bnb", Decimal("598.31"), 4),
        FakeCoin(5426, "Solana", "SOL", "solana", Decimal("171.05"), 5),
        FakeCoin(52, "XRP", "XRP", "xrp", Decimal("0.5234"), 6),
        FakeCoin(74, "Dogecoin", "DOGE", "dogecoin", Decimal("0.123456789012"), 8),
        FakeCoin(646, "Ethercoin", "ETC", "ethercoin", Decimal("0.000212"), None, is_active=0,
                 num_market_pairs=0, date_added="2014-10-03T00:00:00.000Z"),
        FakeCoin(1321, "Ethereum Classic", "ETC", "ethereum-classic", Decimal("26.91"), 22,
                 num_market_pairs=602, max_supply=Decimal("210700000"),
                 date_added="2016-07-24T00:00:00.000Z"),
        FakeCoin(2682, "Holo", "HOT", "holo", Decimal("0.0019"), 150),
        FakeCoin(2069, "Hydro Protocol", "HOT", "hydro-protocol", Decimal("0.0004"), 1800),
        FakeCoin(3077, "HOT Token", "HOT", "hot-token", Decimal("0.0001"), 2200),
    ]


# USD value of one unit of each fiat currency (and metals), for conversions.
DEFAULT_FIAT_USD = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "JPY": Decimal("0.0067"),
    "CHF": Decimal("1.13"),
    "CAD": Decimal("0.73"),
    "AUD": Decimal("0.66"),
    "BRL": Decimal("0.2"),
    "CNY": Decimal("0.138"),
    "INR": Decimal("0.012"),
    "KRW": Decimal("0.00074"),
    "MXN": Decimal("0.058"),
    "XAU": Decimal("2350"),
}
FIAT_IDS = {"USD": 2781, "EUR": 2790, "GBP": 2791, "JPY": 2797, "CHF": 2785, "CAD": 2784,
            "AUD": 2782, "BRL": 2783, "CNY": 2787, "INR": 2796, "KRW": 2798, "MXN": 2799,
            "XAU": 3575}


@dataclass
class Failure:
    """A scripted answer for the next `times` quote calls."""

    status: int = 500
    error_code: int | None = 500
    message: str = "An internal server error occurred"
    body: str = "json"  # json | html | malformed
    retry_after: str | None = None
    delay: float = 0.0
    times: int = 1


@dataclass
class Market:
    """Thread-safe state of one fake CoinMarketCap."""

    api_key: str = TEST_KEY
    coins: list[FakeCoin] = field(default_factory=default_coins)
    fiat_usd: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_FIAT_USD))
    calls: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    latency: float = 0.0  # seconds every successful quotes answer takes
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def by_symbol(self, symbol: str) -> list[FakeCoin]:
        symbol = symbol.upper()
        found = [c for c in self.coins if c.symbol.upper() == symbol]
        if not found and (match := SYNTHETIC_SYMBOL.fullmatch(symbol)):
            found = [synthetic_coin(int(match.group(1)))]
        return found

    def by_id(self, coin_id: int) -> FakeCoin | None:
        for coin in self.coins:
            if coin.id == coin_id:
                return coin
        if coin_id > SYNTHETIC_ID_BASE:
            return synthetic_coin(coin_id - SYNTHETIC_ID_BASE)
        return None

    def usd_value(self, currency: str) -> Decimal | None:
        """USD value of one unit of `currency` (fiat wins over a crypto with the same symbol)."""
        currency = currency.upper()
        if currency in self.fiat_usd:
            return self.fiat_usd[currency]
        coins = [c for c in self.by_symbol(currency) if c.is_active]
        if not coins:
            return None
        return min(coins, key=lambda c: c.cmc_rank or 10**9).price_usd

    def set_prices(self, prices: dict[str, Any]) -> None:
        with self.lock:
            for symbol, price in prices.items():
                for coin in self.coins:
                    if coin.symbol.upper() == symbol.upper() and coin.is_active:
                        coin.price_usd = Decimal(str(price))

    def record(self, path: str, params: Iterable[tuple[str, str]]) -> None:
        with self.lock:
            self.calls.append({"path": path, "params": dict(params)})

    def next_failure(self) -> Failure | None:
        with self.lock:
            if not self.failures:
                return None
            failure = self.failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self.failures.pop(0)
            return failure

    def reset(self) -> None:
        with self.lock:
            self.coins = default_coins()
            self.fiat_usd = dict(DEFAULT_FIAT_USD)
            self.calls.clear()
            self.failures.clear()
            self.latency = 0.0


def synthetic_coin(n: int) -> FakeCoin:
    """Coin SYN<n>: exists for any n, so benchmarks can ask for coins nobody has cached."""
    return FakeCoin(SYNTHETIC_ID_BASE + n, f"Synthetic {n}", f"SYN{n}", f"synthetic-{n}",
                    Decimal(n) + Decimal("0.125"), 1000 + n)
