"""Domain errors: what can go wrong, in the domain's words. The HTTP layer maps each to a status."""

from __future__ import annotations


class QuoteError(Exception):
    """Base of every error the domain reports to its callers."""


class InvalidRequest(QuoteError):
    """The caller's input cannot be served as given."""


class InvalidSymbol(InvalidRequest):
    """A requested symbol is malformed (empty, too long, characters outside A-Z a-z 0-9, too
    many)."""


class InvalidCurrency(InvalidRequest):
    """The `convert` currency is malformed or does not exist."""


class UnknownSymbols(QuoteError):
    """None of the requested symbols exists."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.symbols = tuple(symbols)
        super().__init__("unknown symbol(s): " + ", ".join(self.symbols))


class ProviderError(QuoteError):
    """The quote provider answered with something unusable, or rejected our credentials.

    The message is our own words (safe to show a client); `upstream_code` is the provider's
    numeric error code when it gave one. The provider's own text goes to the log only.
    """

    def __init__(self, message: str, upstream_code: int | None = None) -> None:
        super().__init__(message)
        self.upstream_code = upstream_code


class Unavailable(QuoteError):
    """Something the answer depends on cannot answer now; `retry_after` (seconds) when known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(Unavailable):
    """The quote provider is down or rate-limited; `retry_after` (seconds) when it is known.

    As for ProviderError, the message is ours and `upstream_code` the provider's code if any.
    """

    def __init__(self, message: str, retry_after: float | None = None,
                 upstream_code: int | None = None) -> None:
        super().__init__(message, retry_after)
        self.upstream_code = upstream_code


class BudgetSpent(ProviderUnavailable):
    """The credit budget (per minute, per day, or CoinMarketCap's own verdict) allows no call now;
    `retry_after` says when one will be allowed."""


class ProviderTimeout(ProviderUnavailable):
    """The quote provider did not answer in time."""


class LimitVerdict(ProviderUnavailable):
    """The provider refused the call under one of its plan's limits, for every process of ours
    until the limit lapses: `scope` is "minute" (too many calls this minute, or from this
    address), "day" (the day's credits are spent) or "month" (the month's). `retry_after` is
    when it lapses, in seconds, when the provider said; `upstream_code` its own code."""

    SCOPES = ("minute", "day", "month")

    def __init__(self, message: str, scope: str, retry_after: float | None = None,
                 upstream_code: int | None = None) -> None:
        if scope not in self.SCOPES:
            raise ValueError(f"unknown limit scope {scope!r}")
        super().__init__(message, retry_after, upstream_code)
        self.scope = scope


class StorageError(Exception):
    """A repository or cache could not do its work. The service degrades instead of failing."""


def charged_nothing(error: BaseException) -> bool:
    """Whether the provider call that raised `error` cost no credit, so it can be given back.

    CoinMarketCap charges nothing for an error (a 400, a rejected key, a limit verdict, an
    outage). A timeout may have been answered, and charged, after we gave up; an unusable
    answer without an error code was a charged success: both keep their credit.
    """
    if isinstance(error, InvalidRequest):
        return True
    if isinstance(error, ProviderTimeout):
        return False
    return (isinstance(error, ProviderUnavailable)
            or getattr(error, "upstream_code", None) is not None)
