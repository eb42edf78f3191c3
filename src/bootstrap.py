"""The composition root: every service and adapter, built from Settings, wired in one place.

Flask-free (cosmicpython's `bootstrap`): `create_app` opens the database through
Flask-SQLAlchemy and hands it over as a `Database`, then does only Flask work; the `refresh` and
`history prune` commands and the tests reach the same `Wiring`. Each port may be replaced
through `Overrides` (tests pass fakes there); a port not replaced is built here, and nowhere
else (tests/unit/test_architecture.py checks it).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from src.adapters.budget.board import Board, build_board
from src.adapters.budget.governor import SharedCreditGovernor
from src.adapters.budget.notes import budget_namespace
from src.adapters.buffered_request_log import BufferedRequestLog
from src.adapters.cache.edge_answers import EdgeAnswers
from src.adapters.cache.edge_documents import EdgeDocuments
from src.adapters.cache.local import LocalCache
from src.adapters.cache.memcached import PymemcacheCache
from src.adapters.cache.quote_cache import FlaskCachingQuoteCache
from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.adapters.coinmarketcap.key_info import CoinMarketCapKeyInfo
from src.adapters.sql.budget_board import SqlBoard
from src.adapters.sql.guard import SessionLike
from src.adapters.sql.history import SqlHistoryRepository
from src.adapters.sql.lease import SqlRefreshLease
from src.adapters.sql.quotes import SqlQuoteRepository
from src.adapters.sql.request_log import SqlRequestLog
from src.domain.clock import SystemClock
from src.domain.history import HistoryRepository, HistoryService, RetentionPolicy
from src.domain.hot_set import HotSet
from src.domain.ports import (
    Clock,
    CreditGovernor,
    QuoteCache,
    QuoteProvider,
    QuoteRepository,
    RefreshLease,
    RequestLog,
)
from src.domain.refresh import Refresher, RefreshPolicy
from src.domain.service import QuoteService
from src.domain.spending import call_purpose, retry_cost
from src.entrypoints.http.quotes.render import QuoteRenderer
from src.entrypoints.settings import Settings


@dataclass(frozen=True)
class Overrides:
    """Ports given from outside instead of built (tests pass fakes); None: build the real one."""

    provider: QuoteProvider | None = None
    repository: QuoteRepository | None = None
    cache: QuoteCache | None = None
    clock: Clock | None = None
    request_log: RequestLog | None = None
    refresh_lease: RefreshLease | None = None
    history_repository: HistoryRepository | None = None
    governor: CreditGovernor | None = None


@dataclass(frozen=True)
class Database:
    """The deployment's database as the web framework opened it.

    `engine` is None when the quote repository was replaced (tests): nothing else is then built
    over the database but the history, through `session`. `context` is what a thread of its own
    (the refresher's daily pruning) enters to use `session`.
    """

    session: SessionLike
    engine: Engine | None
    context: Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class RefreshAhead:
    """The per-process buffer of requested symbols and the refresher; None parts when
    refresh-ahead is off or there is no database (and no fakes) to share them through."""

    demand: BufferedRequestLog | None = None
    refresher: Refresher | None = None


@dataclass(frozen=True)
class Wiring:
    """Everything built, as the entrypoints reach it (`src.entrypoints.wiring.wiring()`)."""

    settings: Settings
    clock: Clock
    service: QuoteService
    repository: QuoteRepository
    cache: QuoteCache
    renderer: QuoteRenderer
    edge_answers: EdgeAnswers
    governor: CreditGovernor
    history: HistoryService
    refresh: RefreshAhead


def bootstrap(settings: Settings, database: Database | None,
              overrides: Overrides = Overrides()) -> Wiring:
    """Build every service and adapter; each port in `overrides` is used as given."""
    clock = overrides.clock or SystemClock()
    renderer = QuoteRenderer()
    engine = database.engine if database is not None else None
    repository = overrides.repository or build_repository(settings, _required(database))
    # A replaced provider is not CoinMarketCap: its key info is not read (the plan is configured
    # or Basic's).
    governor = overrides.governor or build_governor(
        settings, clock, read_key_info=overrides.provider is None, engine=engine)
    if settings.cmc_daily_credits is not None:
        # A configured plan is known now: a plan too small for the max age says so at start.
        governor.plan()
    request_log = overrides.request_log or (SqlRequestLog(engine) if engine is not None else None)
    hot_set = (HotSet(request_log, repository, clock, settings.base_currency,
                      window_seconds=settings.refresh_window_seconds)
               if request_log is not None and settings.refresh_window_seconds > 0 else None)
    provider = overrides.provider or build_provider(settings, governor)
    edge = build_edge(settings, renderer, clock)
    cache = overrides.cache or build_cache(settings, edge, clock)
    service = QuoteService(
        provider=provider, repository=repository, cache=cache, clock=clock,
        base_currency=settings.base_currency, cache_ttl_seconds=settings.cache_ttl_seconds,
        max_age=(timedelta(seconds=settings.quote_max_age_seconds)
                 if settings.quote_max_age_seconds else None),
        governor=governor, hot_set=hot_set,
    )
    # A fake cache is no memcached: nginx could not read what the lists would write.
    edge_answers = EdgeAnswers(edge if isinstance(cache, FlaskCachingQuoteCache) else None,
                           max_age_seconds=settings.quote_max_age_seconds or None,
                           now=lambda: clock.now().timestamp())
    history = build_history(settings, clock, overrides.history_repository, database)
    refresh = build_refresh(
        settings, clock, provider=provider, repository=repository, cache=cache,
        governor=governor, engine=engine, request_log=request_log,
        lease=overrides.refresh_lease, history=history,
        context=database.context if database is not None else None)
    return Wiring(settings, clock, service, repository, cache, renderer, edge_answers, governor,
                  history, refresh)


def _required(database: Database | None) -> Database:
    if database is None:
        raise ValueError("the quote repository needs the database (or a replacement)")
    return database


def build_provider(settings: Settings, governor: CreditGovernor) -> QuoteProvider:
    # A retry is one more call against the plan's minute, and after a timeout (maybe answered
    # and charged after we gave up) one more call's credits; errors cost none. The governor
    # counts it for the purpose of the call it retries, and refuses it (BudgetSpent ends the
    # retries) when the budget allows no more.
    return CoinMarketCapProvider(base_url=settings.cmc_base_url, api_key=settings.cmc_api_key,
                                 before_retry=lambda previous: governor.reserve(
                                     call_purpose(), retry_cost(previous)))


def build_governor(settings: Settings, clock: Clock, *, read_key_info: bool = True,
                   engine: Engine | None = None) -> CreditGovernor:
    """The credit budget, shared by every process through the deployment's database: counts
    must outlive a memcached node that restarts or evicts them (the chaos run lost them so).
    Without a database (tests that replace the repository): memcached, else this process."""
    key_info = CoinMarketCapKeyInfo(base_url=settings.cmc_base_url, api_key=settings.cmc_api_key)
    board: Board = SqlBoard(budget_engine(engine)) if engine is not None else build_board(
        settings.memcached_servers)
    return SharedCreditGovernor(
        board=board, clock=clock,
        read_key_info=key_info.read if read_key_info else None,
        daily_credits=settings.cmc_daily_credits, calls_per_minute=settings.cmc_calls_per_minute,
        convert_credit_share=settings.convert_credit_share,
        refresh_interval_seconds=settings.refresh_interval_seconds,
        max_age_seconds=settings.quote_max_age_seconds or None,
        refresh_ahead=settings.refresh_window_seconds > 0,
        namespace=budget_namespace(settings.cmc_base_url, settings.cmc_api_key),
    )


def budget_engine(engine: Engine) -> Engine:
    """The credit counters' own small pool on PostgreSQL, so that their statements never wait
    for (nor count among) the quote path's connections; SQLite's one file shares its engine."""
    if engine.dialect.name != "postgresql":
        return engine
    return create_engine(engine.url, pool_size=1, max_overflow=4, pool_recycle=1800,
                         pool_pre_ping=True, connect_args={"connect_timeout": 3})


def build_repository(settings: Settings, database: Database) -> QuoteRepository:
    url = settings.database_url
    # PostgreSQL reads get a small autocommit pool of their own (SQLite's in-memory databases
    # would be a second, empty database: it keeps switching the session's connection).
    # Autocommit leaves no transaction to roll back when a connection returns to the pool.
    reader = (create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=8,
                            pool_reset_on_return=None, **settings.engine_options())
              if url.startswith("postgresql") else None)
    return SqlQuoteRepository(database.session, reader=reader)


def cache_backend(settings: Settings) -> PymemcacheCache | LocalCache:
    """The shared cache's backend: memcached when MEMCACHED_SERVERS is set, else in-process
    (LocalCache: thread-safe, unlike Flask-Caching's SimpleCache). Every key starts with the
    deployment's part (CACHE_NAMESPACE); quote and claim keys name the currency."""
    if settings.memcached_servers:
        return PymemcacheCache.for_servers(settings.memcached_servers,
                                           default_timeout=settings.cache_ttl_seconds,
                                           key_prefix=f"{settings.cache_namespace}:")
    return LocalCache.in_process(settings.cache_ttl_seconds)


def build_edge(settings: Settings, renderer: QuoteRenderer, clock: Clock) -> EdgeDocuments | None:
    """With memcached, each quote cached also leaves its ready answer there for nginx's edge
    (deploy/nginx.conf), rendered by the same renderer as the app's, under this deployment's
    key namespace (CACHE_NAMESPACE:BASE_CURRENCY)."""
    if not settings.memcached_servers:
        return None
    return EdgeDocuments(settings.memcached_servers, renderer.render_cached,
                         namespace=settings.key_namespace,
                         max_age_seconds=settings.quote_max_age_seconds or None,
                         now=lambda: clock.now().timestamp())


def build_cache(settings: Settings, edge: EdgeDocuments | None, clock: Clock) -> QuoteCache:
    """The shared cache, writing nginx's edge documents beside the quotes when `edge` is set."""
    return FlaskCachingQuoteCache(cache_backend(settings), edge=edge,
                                  now=lambda: clock.now().timestamp())


def build_history(settings: Settings, clock: Clock, repository: HistoryRepository | None,
                  database: Database | None) -> HistoryService:
    if repository is None:
        repository = SqlHistoryRepository(_required(database).session)
    policy = RetentionPolicy(settings.history_full_days, settings.history_hourly_days)
    return HistoryService(repository, clock, settings.base_currency, policy)


def build_refresh(settings: Settings, clock: Clock, *, provider: QuoteProvider,
                  repository: QuoteRepository, cache: QuoteCache, governor: CreditGovernor,
                  engine: Engine | None, request_log: RequestLog | None,
                  lease: RefreshLease | None, history: HistoryService,
                  context: Callable[[], AbstractContextManager[Any]] | None) -> RefreshAhead:
    """The per-process buffer of requested symbols and the refresher, both over the database
    (shared by workers, refreshers and replicas); nothing when neither a database nor fakes."""
    if request_log is None or lease is None:
        if engine is None:  # the quote repository was replaced: no database
            return RefreshAhead()
        request_log = request_log or SqlRequestLog(engine)
        lease = lease or SqlRefreshLease(engine, clock, database_time=True)
    policy = RefreshPolicy(
        window_seconds=settings.refresh_window_seconds,
        interval_seconds=settings.refresh_interval_seconds,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        base_currency=settings.base_currency,
        max_age_seconds=settings.quote_max_age_seconds or None,
    )

    def prune_history() -> object:
        # The refresher prunes in a thread of its own: the session needs a context there.
        if context is None:
            return history.prune()
        with context():
            return history.prune()

    refresher = Refresher(
        provider=provider, repository=repository, cache=cache,
        governor=governor, request_log=request_log, lease=lease, clock=clock, policy=policy,
        holder=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        daily_job=prune_history,
    )
    demand = BufferedRequestLog(request_log, clock) if settings.refresh_window_seconds > 0 else None
    return RefreshAhead(demand=demand, refresher=refresher)
