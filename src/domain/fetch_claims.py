"""Per-symbol fetch claims shared by every process: one fetch per symbol, waiters share its end."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from src.domain.deadline import Deadline
from src.domain.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from src.domain.model import CoinQuote, FetchFailure
from src.domain.ports import Clock, QuoteCache

# Polling while another process fetches: quick at first (a hit often lands within tens of
# milliseconds), then every 100 ms until the deadline.
_FIRST_WAITS = (0.01, 0.02, 0.04, 0.08)
_LATER_WAIT = 0.1

# FetchFailure.kind for each provider error, most specific class first.
_KINDS: tuple[tuple[type[ProviderUnavailable | ProviderError], str], ...] = (
    (ProviderTimeout, "timeout"),
    (ProviderUnavailable, "unavailable"),
    (ProviderError, "error"),
)


def failure_note(error: ProviderUnavailable | ProviderError) -> FetchFailure:
    """The note a failed holder leaves for those waiting on its claims."""
    kind = next(name for cls, name in _KINDS if isinstance(error, cls))
    return FetchFailure(kind=kind, message=str(error),
                        retry_after=getattr(error, "retry_after", None),
                        upstream_code=error.upstream_code)


def error_from(note: FetchFailure) -> ProviderUnavailable | ProviderError:
    """The domain error a waiter raises for the holder's failure note."""
    if note.kind == "error":
        return ProviderError(note.message, upstream_code=note.upstream_code)
    cls = ProviderTimeout if note.kind == "timeout" else ProviderUnavailable
    return cls(note.message, retry_after=note.retry_after, upstream_code=note.upstream_code)


@dataclass(frozen=True, slots=True)
class WaitOutcome:
    """How the fetches of others ended for the symbols waited on.

    `cached`: entries now in the cache (None: unknown symbol); `failed`: the holder's failure
    note; `vanished`: the claim ended without a result (holder crashed, claim expired), so the
    symbol may be claimed again; `pending`: still being fetched when the deadline passed.
    """

    cached: dict[str, CoinQuote | None] = field(default_factory=dict)
    failed: dict[str, FetchFailure] = field(default_factory=dict)
    vanished: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()


class FetchClaims:
    """One fetch attempt's claims: taken and released under a token unique to the attempt, so
    a fetch that outlives its claim can never release the claim of the next fetcher."""

    def __init__(self, cache: QuoteCache, clock: Clock, currency: str, *,
                 ttl_seconds: float, failure_ttl_seconds: float) -> None:
        self.cache = cache
        self.clock = clock
        self.currency = currency
        self.owner = uuid.uuid4().hex
        self.ttl_seconds = ttl_seconds
        self.failure_ttl_seconds = failure_ttl_seconds

    def claim(self, symbols: Sequence[str]) -> tuple[str, ...]:
        """Claim what nobody else holds; return the symbols now ours."""
        return self.cache.claim_fetches(symbols, self.currency, self.owner, self.ttl_seconds)

    def release(self, symbols: Sequence[str], failure: FetchFailure | None = None) -> None:
        """Release our claims; with `failure`, leave it as a note for those waiting.

        A note never outlives the failure's own `retry_after`: once the provider (or our
        breaker) says a call may be tried again, the next request tries.
        """
        ttl = self.failure_ttl_seconds
        if failure is not None and failure.retry_after is not None:
            ttl = min(ttl, failure.retry_after)
        self.cache.release_fetches(symbols, self.currency, self.owner, failure, ttl)

    def wait(self, symbols: Sequence[str], deadline: Deadline) -> WaitOutcome:
        """Poll until every claim on `symbols` held by others has ended, or the deadline passes.

        Per poll one look at the claims; the cache is read only for the symbols whose claim
        has ended (the holder caches its result before releasing, so no result is missed).
        """
        pending = tuple(symbols)
        cached: dict[str, CoinQuote | None] = {}
        failed: dict[str, FetchFailure] = {}
        vanished: list[str] = []
        polls = 0
        while pending and not deadline.expired:
            step = _FIRST_WAITS[polls] if polls < len(_FIRST_WAITS) else _LATER_WAIT
            self.clock.sleep(min(step, deadline.remaining()))
            polls += 1
            states = self.cache.fetch_states(pending, self.currency)
            ended = [s for s in pending if states.get(s) is not None or s not in states]
            if not ended:
                continue
            found = self.cache.get_many(ended, self.currency)
            cached.update(found)
            for symbol in ended:
                if symbol in found:
                    continue
                note = states.get(symbol)
                if note is not None:
                    failed[symbol] = note
                else:
                    vanished.append(symbol)
            pending = tuple(s for s in pending if s not in ended)
        return WaitOutcome(cached, failed, tuple(vanished), pending)
