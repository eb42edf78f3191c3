"""CoinMarketCap Pro API adapter: the QuoteProvider port over HTTP, with its resilience policy.

One concern per module: `breaker` (circuit breaker), `retry` (retry policy within a deadline),
`answers` (HTTP/CoinMarketCap answers -> body or domain error), `wire` (JSON -> domain values),
`watchdog` (cuts an exchange at its deadline) and `client` (the provider: session, timeouts).
"""

from src.adapters.coinmarketcap.breaker import CircuitBreaker, CircuitOpen
from src.adapters.coinmarketcap.client import (
    PRODUCTION_URL,
    QUOTES_PATH,
    SANDBOX_KEY,
    SANDBOX_URL,
    CoinMarketCapProvider,
)

__all__ = [
    "PRODUCTION_URL",
    "QUOTES_PATH",
    "SANDBOX_KEY",
    "SANDBOX_URL",
    "CircuitBreaker",
    "CircuitOpen",
    "CoinMarketCapProvider",
]
