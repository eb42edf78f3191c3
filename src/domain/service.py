"""The retrieval rules: cache -> database (re-cache) -> provider (store, cache); conversion."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from src.domain import freshness
from src.domain.conversion import Conversions
from src.domain.deadline import Deadline
from src.domain.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    QuoteError,
    StorageError,
    UnknownSymbols,
)
from src.domain.fetch_claims import FetchClaims, WaitOutcome, error_from, failure_note
from src.domain.hot_set import HotSet
from src.domain.model import (
    CoinQuote,
    Fetched,
    Purpose,
    QuoteAnswer,
    ServedQuote,
    Source,
)
from src.domain.ports import (
    Clock,
    CreditGovernor,
    QuoteCache,
    QuoteProvider,
    QuoteRepository,
)
from src.domain.spending import paid_call, room_in_call

logger = logging.getLogger(__name__)

# The coin asked for in a conversion whose only purpose is to learn whether the currency
# exists (CoinMarketCap id 1, Bitcoin: listed for good).


# Below this much time left a provider call cannot connect and read an answer (the adapter
# refuses to start one too).
MIN_CALL_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one step of the rules settled: served coins, unknown symbols, and what is left."""

    served: dict[str, ServedQuote] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def then(self, later: Lookup) -> Lookup:
        """This step's findings followed by a later step's, which settled (part of) `missing`."""
        return Lookup({**self.served, **later.served}, self.unknown + later.unknown, later.missing)


def sort_cached(symbols: Sequence[str], entries: Mapping[str, CoinQuote | None]) -> Lookup:
    """Cache entries as a Lookup: hits served, negative entries unknown, the rest missing."""
    served: dict[str, ServedQuote] = {}
    unknown: list[str] = []
    missing: list[str] = []
    for symbol in symbols:
        if symbol not in entries:
            missing.append(symbol)
        elif (entry := entries[symbol]) is None:
            unknown.append(symbol)
        else:
            served[symbol] = ServedQuote(entry, Source.CACHE)
    return Lookup(served, tuple(unknown), tuple(missing))


# Quotes past the max age, marked stale with where they were read, by symbol: what stands in
# when the provider fails.
StandIns = Mapping[str, ServedQuote]


def _stand_ins(quotes: Mapping[str, CoinQuote], source: Source) -> dict[str, ServedQuote]:
    return {s: ServedQuote(q, source, stale=True) for s, q in quotes.items()}


class QuoteService:
    """Answers quote requests for many symbols at once, applying the rules to each symbol.

    Per request: one cache multi-get; one database read for the cache misses (what it finds is
    cached again); one provider call for the rest (stored, then cached, unknown symbols as
    negative entries). Missing symbols are claimed per symbol across processes, so concurrent
    requests share one fetch of each symbol, and its failure too. All of a request's upstream
    work (waiting for another fetch, its own call, the conversion call) ends within one
    deadline of `upstream_budget_seconds`. A conversion costs one more provider call and is
    never cached or stored; whether a conversion currency exists is remembered.

    On a credit budget (`governor`): each provider call is paid for by the spending rules
    (src/domain/spending.py: reserved with its purpose, settled to what CoinMarketCap charged,
    its limit verdicts honoured by every process). A quote older than `max_age` counts as
    missing (no cache entry outlives it); when no call is allowed, or the call fails, or the
    answer for it cannot be read, it is served marked stale. Identical conversions in flight at
    once in this process share one call. With a `hot_set`, a quotes call also carries the
    stalest hot symbols nobody else is fetching, up to the coins its credits pay for anyway.

    The provider is called in exactly two places, `_call_symbols` and `_call_ids`.
    """

    def __init__(
        self,
        *,
        provider: QuoteProvider,
        repository: QuoteRepository,
        cache: QuoteCache,
        clock: Clock,
        base_currency: str = "USD",
        cache_ttl_seconds: int = 60,
        max_age: timedelta | None = None,
        upstream_budget_seconds: float = 8.0,
        failure_note_seconds: float = 5.0,
        known_currency_ttl_seconds: int = 86_400,
        unknown_currency_ttl_seconds: int = 3_600,
        governor: CreditGovernor | None = None,
        hot_set: HotSet | None = None,
    ) -> None:
        self.provider = provider
        self.repository = repository
        self.cache = cache
        self.clock = clock
        self.base_currency = base_currency
        self.cache_ttl_seconds = cache_ttl_seconds
        self.max_age = max_age
        self.upstream_budget_seconds = upstream_budget_seconds
        # A claim outlives the holder's whole fetch (bounded by its deadline), so it never
        # expires while the fetch runs; the margin covers storing and caching the answer. The
        # price: a holder that dies mid-fetch blocks its symbols until then, and its waiters
        # end within their own deadline (stale where they can) rather than calling themselves.
        self.claim_ttl_seconds = upstream_budget_seconds + 2.0
        # Long enough for the waiters of a failed fetch to read the note; short enough that
        # the next request after an outage tries again soon.
        self.failure_note_seconds = failure_note_seconds
        # Currency lists change rarely: a valid one is trusted for a day; an invalid one is
        # refused without a call for an hour (a currency listed meanwhile waits at most that).
        self.known_currency_ttl_seconds = known_currency_ttl_seconds
        self.unknown_currency_ttl_seconds = unknown_currency_ttl_seconds
        # Every provider call is reserved here first (None: no budget, e.g. in tests).
        self.governor = governor
        self.hot_set = hot_set
        self._conversions = Conversions(self)

    def get_quotes(self, symbols: Sequence[str], convert: str | None = None) -> QuoteAnswer:
        """Return the quotes of `symbols` (normalised, distinct), converted when `convert` is set.

        Raises InvalidCurrency when `convert` does not exist (whatever the symbols),
        UnknownSymbols when none of the symbols exists, and the provider's errors when the
        provider is needed and fails (unless a stale stored quote can stand in for each symbol
        concerned). A coin the conversion answer lacks is served with `converted` None.
        """
        # The currency to convert to, when it costs a call (`convert` is not the base currency).
        target = convert if convert is not None and convert != self.base_currency else None
        converting = target is not None
        currency_known = self._conversions.remembered(target) if target is not None else None

        found, aged = self._too_old_as_missing(
            symbols, sort_cached(symbols, self.cache.get_many(symbols, self.base_currency)))
        # Made only when upstream work may follow, so a full cache hit stays one cache read.
        deadline = self._new_deadline() if found.missing or converting else None
        if found.missing and deadline is not None:
            found = found.then(self._resolve_missing(found.missing, deadline, aged))
        unknown = tuple(s for s in symbols if s in found.unknown)

        if not found.served:
            if target is not None and deadline is not None and not currency_known:
                self._conversions.learn(target, deadline)
            raise UnknownSymbols(unknown)
        quotes = {s: found.served[s] for s in symbols if s in found.served}
        if convert == self.base_currency:
            quotes = {s: replace(q, converted=q.coin_quote.quote) for s, q in quotes.items()}
        elif target is not None and deadline is not None:
            quotes = self._conversions.convert(quotes, target, currency_known, deadline)
        reuse = freshness.reuse_seconds(quotes.values(), self.clock.now(),
                                        self.cache_ttl_seconds, self.max_age)
        return QuoteAnswer(quotes=quotes, unknown_symbols=unknown, convert=convert,
                           reuse_seconds=reuse)

    def _new_deadline(self) -> Deadline:
        return Deadline(self.upstream_budget_seconds, clock=self._seconds)

    def _seconds(self) -> float:
        # The injected clock, so that a test's simulated waits and slow calls move the deadline.
        return self.clock.now().timestamp()

    # --- base quotes: the database, then the provider -------------------------------------

    def _too_old_as_missing(self, symbols: Sequence[str],
                            found: Lookup) -> tuple[Lookup, dict[str, CoinQuote]]:
        """Cache hits older than the max age count as missing; they are returned apart, to stand
        in (stale) if nothing fresher can be had."""
        _, aged = freshness.split_by_age({s: q.coin_quote for s, q in found.served.items()},
                                         self.clock.now(), self.max_age)
        if not aged:
            return found, {}
        served = {s: q for s, q in found.served.items() if s not in aged}
        missing = tuple(s for s in symbols if s in aged or s in found.missing)
        return Lookup(served, found.unknown, missing), aged

    def _ttl_within_max_age(self, quotes: Mapping[str, CoinQuote]) -> int:
        return freshness.ttl_within_max_age(quotes.values(), self.clock.now(),
                                            self.cache_ttl_seconds, self.max_age)

    def _resolve_missing(self, missing: Sequence[str], deadline: Deadline,
                         aged: Mapping[str, CoinQuote]) -> Lookup:
        """Settle cache misses from the database, then the provider for what is still missing."""
        fresh, old = self._split_by_age(self._read_stored(missing))
        stale = {**_stand_ins(aged, Source.CACHE), **_stand_ins(old, Source.DATABASE)}
        if fresh:
            self.cache.set_many(fresh, self.base_currency, self._ttl_within_max_age(fresh))
        stored = Lookup({s: ServedQuote(q, Source.DATABASE) for s, q in fresh.items()},
                        missing=tuple(s for s in missing if s not in fresh))
        if not stored.missing:
            return stored
        return stored.then(self._fetch_shared(stored.missing, stale, deadline))

    def _fetch_shared(self, missing: Sequence[str], stale: StandIns,
                      deadline: Deadline) -> Lookup:
        """Fetch `missing`, at most one process per symbol at a time.

        Claims what nobody holds and fetches it; waits for the symbols others hold and takes
        their result, or their failure; claims again the symbols whose claim ended without
        either (only one of those waiting wins each). Raises the provider's error (ours or the
        holder's) for a symbol that failed with no stale stored quote to stand in.
        """
        claims = FetchClaims(self.cache, self.clock, self.base_currency,
                             ttl_seconds=self.claim_ttl_seconds,
                             failure_ttl_seconds=self.failure_note_seconds)
        found = Lookup(missing=tuple(missing))
        stale = dict(stale)
        while found.missing:
            if deadline.remaining() < MIN_CALL_SECONDS:
                # No time left for a call: claiming now would only leave a timeout note that
                # fails the next requests for these symbols without their ever calling.
                timeout = ProviderTimeout("CoinMarketCap did not answer in time")
                return found.then(self._stand_in(found.missing, stale, timeout))
            mine = claims.claim(found.missing)
            others = tuple(s for s in found.missing if s not in mine)
            fetched = self._fetch_claimed(mine, claims, stale, deadline) if mine else Lookup()
            waited = Lookup()
            if others:
                waited, aged = self._after_others(claims.wait(others, deadline), stale)
                stale.update(_stand_ins(aged, Source.CACHE))
            # What is still missing: the symbols whose claim vanished, to be claimed again.
            found = found.then(fetched).then(waited)
        return found

    def _fetch_claimed(self, mine: tuple[str, ...], claims: FetchClaims,
                       stale: StandIns, deadline: Deadline) -> Lookup:
        """Fetch the symbols we hold claims on; release them, with a failure note if it failed."""
        found = Lookup(missing=mine)
        carried: tuple[str, ...] = ()
        try:
            # Another process may have fetched, cached and released between our miss and our
            # claim: look again before paying for a call.
            cached = sort_cached(mine, self.cache.get_many(mine, self.base_currency))
            found, _ = self._too_old_as_missing(mine, cached)
            if found.missing:
                carried = self._carry(found.missing, stale, claims)
                found = found.then(self._fetch_from_provider(found.missing, carried, stale,
                                                             deadline))
        except (ProviderUnavailable, ProviderError) as exc:
            # Waiters read the cache before the note, so the symbols found above still reach them.
            # A deadline of ours that ran out says nothing about CoinMarketCap: no note then.
            ours = isinstance(exc, ProviderTimeout) and deadline.remaining() < MIN_CALL_SECONDS
            claims.release(mine, None if ours else failure_note(exc))
            if carried:
                claims.release(carried)
            return found.then(self._stand_in(found.missing, stale, exc))
        except BaseException:
            claims.release(mine + carried)
            raise
        claims.release(mine + carried)
        return found

    def _carry(self, needed: tuple[str, ...], stale: StandIns,
                claims: FetchClaims) -> tuple[str, ...]:
        """The hot symbols a call for `needed` carries in the room its credits pay for anyway,
        stalest first; a symbol another process is fetching is left to it.

        A call for a symbol with a stored quote carries those due for a refresh (past half their
        max age). A call for symbols never seen may be answered with CoinMarketCap's uncharged
        "invalid symbol": it carries only quotes already past the max age, which the next
        request for them would pay for anyway, so that junk requests never buy refreshes."""
        if self.hot_set is None:
            return ()
        max_age = self.max_age.total_seconds() if self.max_age is not None else None
        known = any(s in stale for s in needed)
        if not known and max_age is None:
            return ()
        older_than = (freshness.due_after_seconds(max_age) if known or max_age is None
                      else max_age)
        room = room_in_call(self.hot_set.coins(needed))
        candidates = self.hot_set.stalest(room, older_than, leave_out=needed)
        return claims.claim(candidates) if candidates else ()

    def _after_others(self, waited: WaitOutcome,
                      stale: StandIns) -> tuple[Lookup, dict[str, CoinQuote]]:
        """What the fetches of others left: their results, their failures (or stale stand-ins),
        a timeout for what is still pending, and the symbols to claim again: those whose claim
        vanished, and those whose result is already past the max age (returned apart too, to
        stand in stale if nothing fresher can be had)."""
        found, aged = self._too_old_as_missing(tuple(waited.cached),
                                               sort_cached(tuple(waited.cached), waited.cached))
        too_old = found.missing
        for note in set(waited.failed.values()):
            symbols = tuple(s for s, n in waited.failed.items() if n == note)
            found = found.then(self._stand_in(symbols, stale, error_from(note)))
        if waited.pending:
            timeout = ProviderTimeout("CoinMarketCap did not answer in time")
            found = found.then(self._stand_in(waited.pending, stale, timeout))
        return found.then(Lookup(missing=waited.vanished + too_old)), aged

    def _stand_in(self, symbols: tuple[str, ...], stale: StandIns,
                  error: QuoteError) -> Lookup:
        """Stale quotes for `symbols` after a provider failure, or raise `error`."""
        if any(s not in stale for s in symbols):
            raise error
        logger.warning("provider failed (%s); serving %d stale stored quote(s)", error,
                       len(symbols))
        return Lookup({s: stale[s] for s in symbols})

    def _fetch_from_provider(self, symbols: tuple[str, ...], carried: tuple[str, ...],
                             stale: StandIns, deadline: Deadline) -> Lookup:
        """One provider call for `symbols` (and the `carried` hot symbols); store and cache the
        answer, unknown symbols too. A symbol answered with nothing readable is a failed fetch
        of it: served stale, never cached as unknown."""
        fetched = self._call_symbols(symbols + carried, deadline)
        quotes = fetched.quotes
        unreadable = tuple(s for s in symbols if s in fetched.unreadable)
        not_found = tuple(s for s in symbols + carried
                          if s not in quotes and s not in fetched.unreadable)
        if quotes:
            self._store(quotes)
        entries: dict[str, CoinQuote | None] = {**quotes, **dict.fromkeys(not_found)}
        if entries:
            self.cache.set_many(entries, self.base_currency, self._ttl_within_max_age(quotes))
        found = Lookup({s: ServedQuote(quotes[s], Source.PROVIDER) for s in symbols
                        if s in quotes}, tuple(s for s in symbols if s in not_found))
        if unreadable:
            error = ProviderError("CoinMarketCap's answer for " + ",".join(unreadable)
                                  + " could not be read")
            found = found.then(self._stand_in(unreadable, stale, error))
        return found

    def _read_stored(self, symbols: Sequence[str]) -> dict[str, CoinQuote]:
        try:
            return self.repository.newest(symbols, self.base_currency)
        except StorageError:
            logger.exception("database read failed; asking the provider instead")
            return {}

    def _store(self, fetched: dict[str, CoinQuote]) -> None:
        try:
            self.repository.add(fetched)
        except StorageError:
            # The answer is still served and cached; only the history row is lost.
            logger.exception("database write failed; %d quote(s) not kept", len(fetched))

    def _split_by_age(
        self, stored: dict[str, CoinQuote]
    ) -> tuple[dict[str, CoinQuote], dict[str, CoinQuote]]:
        """Split stored quotes into those young enough to serve and those that count as missing."""
        return freshness.split_by_age(stored, self.clock.now(), self.max_age)

    # --- the one place a base quote calls the provider (conversions: src/domain/conversion.py)

    def _call_symbols(self, symbols: tuple[str, ...],
                      deadline: Deadline) -> Fetched[str, CoinQuote]:
        if deadline.expired:
            raise ProviderTimeout("CoinMarketCap did not answer in time")
        coins = self.hot_set.coins(symbols) if self.hot_set is not None else len(symbols)
        fetched = paid_call(self.governor, Purpose.REQUEST, coins, lambda: (
            self.provider.fetch_by_symbols(symbols, self.base_currency, deadline=deadline)))
        if self.hot_set is not None:
            self.hot_set.fetched(fetched.quotes, fetched.coins)
        return fetched
