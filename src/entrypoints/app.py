"""create_app: the composition root. The only place adapters are built and wired."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from flask_caching import Cache
from flask_migrate import Migrate
from werkzeug.exceptions import UnprocessableEntity

from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.adapters.coinmarketcap.key_info import CoinMarketCapKeyInfo
from src.adapters.buffered_request_log import BufferedRequestLog
from src.adapters.budget.board import Board, build_board
from src.adapters.budget.governor import SharedCreditGovernor
from src.adapters.budget.notes import budget_namespace
from src.adapters.sql.orm import db
from src.adapters.cache.edge_documents import EdgeDocuments
from src.adapters.cache.quote_cache import FlaskCachingQuoteCache
from src.adapters.sql.history import SqlHistoryRepository
from src.adapters.sql.lease import SqlRefreshLease
from src.adapters.sql.budget_board import SqlBoard
from src.adapters.sql.quotes import SqlQuoteRepository
from src.adapters.sql.request_log import SqlRequestLog
from src.domain.clock import SystemClock
from src.domain.history import HistoryRepository, HistoryService, RetentionPolicy
from src.domain.hot_set import HotSet
from src.domain.ports import Clock, CreditGovernor, QuoteCache, QuoteProvider, QuoteRepository, RefreshLease, RequestLog
from src.domain.refresh import Refresher, RefreshPolicy
from src.domain.service import QuoteService
from src.domain.spending import call_purpose
from src.entrypoints import chart, health_api, history_api, history_cli, quotes_api
from src.entrypoints.docs import DOCS_CONFIG, register_docs_assets
from src.entrypoints.flask_app import CoinquoteFlask
from src.entrypoints.http_caching import register_http_caching
from src.entrypoints.errors import CoinquoteApi, register_error_handlers
from src.entrypoints.jsonio import ExactJSONProvider
from src.entrypoints.refresh_ahead import RefreshAhead
from src.entrypoints.refresh_cli import refresh as refresh_command
from src.entrypoints.logs import configure_logging
from src.entrypoints.observability import register_observability
from src.entrypoints.proxies import TrustedProxyFix
from src.entrypoints.rate_limit import register_rate_limit
from src.entrypoints.render import QuoteRenderer
from src.entrypoints.settings import Settings
from src.entrypoints.usage_api import register_usage

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
API_CONFIG = {
    "API_TITLE": "coinquote",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "API_SPEC_OPTIONS": {
        "info": {
            "description": (
                "Latest cryptocurrency quotes from CoinMarketCap, served fast and cheaply.\n\n"
                "Per symbol: a cache hit (60 s) answers first; else the newest stored quote,"
                " which is cached again for 60 s; else CoinMarketCap, whose answer is stored"
                " and cached. Converted quotes (`convert`) are fetched for each request and"
                " never cached or stored.\n\nPrice history of what was stored:"
                " `/api/v1/quotes/history`, drawn as a chart at [/chart?symbol=BTC](chart?symbol=BTC)."
                "\n\nClients need no credentials: the CoinMarketCap key"
                " stays on the server."
            )
        },
        # Clients authenticate with nothing: the CoinMarketCap key never leaves the server.
        "security": [],
    },
}


@dataclass(frozen=True)
class Services:
    """What the views reach through `current_app.extensions["coinquote"]`."""

    settings: Settings
    service: QuoteService
    repository: QuoteRepository
    cache: QuoteCache
    renderer: QuoteRenderer


def create_app(
    settings: Settings | None = None,
    *,
    provider: QuoteProvider | None = None,
    repository: QuoteRepository | None = None,
    cache: QuoteCache | None = None,
    clock: Clock | None = None,
    request_log: RequestLog | None = None,
    refresh_lease: RefreshLease | None = None,
    history_repository: HistoryRepository | None = None,
    governor: CreditGovernor | None = None,
) -> Flask:
    """Build the application; each port may be replaced (tests pass fakes here)."""
    settings = settings or Settings.from_env(os.environ)
    configure_logging(settings.log_format, settings.cmc_api_key, settings.log_level)
    app = CoinquoteFlask("src")
    app.config.update(settings.to_flask_config())
    app.config.update(API_CONFIG)
    app.config.update(DOCS_CONFIG)
    app.json = ExactJSONProvider(app)
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, settings.trusted_proxies,
                                   x_for=1, x_proto=1, x_host=1, x_prefix=1)
    clock = clock or SystemClock()
    renderer = QuoteRenderer()
    repository = repository or build_repository(app)
    engine = database_engine(app)
    # A replaced provider is not CoinMarketCap: its key info is not read (the plan is configured
    # or Basic's).
    app.extensions["governor"] = governor or build_governor(
        settings, clock, read_key_info=provider is None, engine=engine)
    if settings.cmc_daily_credits is not None:
        # A configured plan is known now: a plan too small for the max age says so at start.
        app.extensions["governor"].plan()
    request_log = request_log or (SqlRequestLog(engine) if engine is not None else None)
    hot_set = (HotSet(request_log, repository, clock, settings.base_currency,
                      window_seconds=settings.refresh_window_seconds)
               if request_log is not None and settings.refresh_window_seconds > 0 else None)
    service = QuoteService(
        provider=provider or build_provider(settings, app.extensions["governor"]),
        repository=repository,
        cache=(cache := cache or build_cache(app, settings, renderer, clock)),
        clock=clock,
        base_currency=settings.base_currency,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        max_age=(
            timedelta(seconds=settings.quote_max_age_seconds)
            if settings.quote_max_age_seconds
            else None
        ),
        governor=app.extensions["governor"],
        hot_set=hot_set,
    )
    app.extensions["coinquote"] = Services(settings, service, repository, cache, renderer)
    app.extensions["history"] = build_history(app, settings, history_repository, clock)
    app.extensions["refresh"] = build_refresh(app, settings, service, clock, engine,
                                              request_log, refresh_lease)
    register_rate_limit(app, settings)
    register_http_caching(app)
    register_api(app)
    if settings.uses_sandbox:
        logger.warning(
            "CMC_API_KEY is not set: using the CoinMarketCap SANDBOX (%s) and its public test"
            " key. The sandbox serves mock data; set CMC_API_KEY for real quotes.",
            settings.cmc_base_url,
        )
    return app


def build_provider(settings: Settings, governor: CreditGovernor) -> QuoteProvider:
    # A retry is one more call against the plan's minute (errors cost no credits): the governor
    # counts it for the purpose of the call it retries, and refuses it (BudgetSpent ends the
    # retries) when the minute is used up.
    return CoinMarketCapProvider(base_url=settings.cmc_base_url, api_key=settings.cmc_api_key,
                                 before_retry=lambda: governor.reserve(call_purpose(), 0))


def build_governor(settings: Settings, clock: Clock, *, read_key_info: bool = True,
                   engine: Engine | None = None) -> CreditGovernor:
    """The credit budget, shared by every process: through memcached when configured, else
    through the deployment's database, else (no database either: tests) in this process."""
    key_info = CoinMarketCapKeyInfo(base_url=settings.cmc_base_url, api_key=settings.cmc_api_key)
    board: Board = (SqlBoard(engine) if engine is not None and not settings.memcached_servers
                    else build_board(settings.memcached_servers))
    return SharedCreditGovernor(
        board=board, clock=clock,
        read_key_info=key_info.read if read_key_info else None,
        daily_credits=settings.cmc_daily_credits, calls_per_minute=settings.cmc_calls_per_minute,
        convert_credit_share=settings.convert_credit_share,
        refresh_interval_seconds=settings.refresh_interval_seconds,
        max_age_seconds=settings.quote_max_age_seconds or None,
        namespace=budget_namespace(settings.cmc_base_url, settings.cmc_api_key),
    )


def database_engine(app: Flask) -> Engine | None:
    """The deployment's database engine; None when the quote repository was replaced (tests)."""
    if "migrate" not in app.extensions:
        return None
    with app.app_context():
        return db.engine


def build_repository(app: Flask) -> QuoteRepository:
    db.init_app(app)
    Migrate(app, db, directory=str(MIGRATIONS_DIR))
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    # PostgreSQL reads get a small autocommit pool of their own (SQLite's in-memory databases
    # would be a second, empty database: it keeps switching the session's connection).
    # Autocommit leaves no transaction to roll back when a connection returns to the pool.
    reader = (create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=8,
                            pool_reset_on_return=None, **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
              if url.startswith("postgresql") else None)
    return SqlQuoteRepository(db.session, reader=reader)


def build_history(app: Flask, settings: Settings, repository: HistoryRepository | None,
                  clock: Clock) -> HistoryService:
    if repository is None:
        if "sqlalchemy" not in app.extensions:  # the quote repository was replaced
            db.init_app(app)
        repository = SqlHistoryRepository(db.session)
    policy = RetentionPolicy(settings.history_full_days, settings.history_hourly_days)
    return HistoryService(repository, clock, settings.base_currency, policy)


def build_refresh(app: Flask, settings: Settings, service: QuoteService, clock: Clock,
                  engine: Engine | None, request_log: RequestLog | None,
                  lease: RefreshLease | None) -> RefreshAhead:
    """The per-process buffer of requested symbols and the refresher, both over the database
    (shared by workers, refreshers and replicas); nothing when neither a database nor fakes."""
    if request_log is None or lease is None:
        if engine is None:  # the quote repository was replaced: no database
            return RefreshAhead()
        request_log = request_log or SqlRequestLog(engine)
        lease = lease or SqlRefreshLease(engine, clock, database_time=True)
    governor = app.extensions["governor"]
    policy = RefreshPolicy(
        window_seconds=settings.refresh_window_seconds,
        interval_seconds=settings.refresh_interval_seconds,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        base_currency=settings.base_currency,
        max_age_seconds=settings.quote_max_age_seconds or None,
    )
    history = app.extensions.get("history")

    def prune_history() -> object:
        # The refresher prunes in a thread of its own: the session needs an app context there.
        with app.app_context():
            return history.prune()

    refresher = Refresher(
        provider=service.provider, repository=service.repository, cache=service.cache,
        governor=governor, request_log=request_log, lease=lease, clock=clock, policy=policy,
        holder=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        daily_job=prune_history if history is not None else None,
    )
    demand = BufferedRequestLog(request_log, clock) if settings.refresh_window_seconds > 0 else None
    return RefreshAhead(demand=demand, refresher=refresher)


def build_cache(app: Flask, settings: Settings, renderer: QuoteRenderer,
                clock: Clock) -> QuoteCache:
    """The shared cache; with memcached, each quote cached also leaves its ready answer there for
    nginx's fast path (deploy/nginx.conf), rendered by the same renderer as the app's."""
    edge = (EdgeDocuments(settings.memcached_servers, renderer.render_cached,
                          max_age_seconds=settings.quote_max_age_seconds or None,
                          now=lambda: clock.now().timestamp())
            if settings.memcached_servers else None)
    return FlaskCachingQuoteCache(Cache(app), edge=edge, now=lambda: clock.now().timestamp())


MAX_QUERY_STRING_BYTES = 4096  # 100 symbols of 20 characters need about 2,100


def register_api(app: Flask) -> None:
    register_observability(app)

    @app.before_request
    def bound_the_query_string() -> None:
        if len(request.query_string) > MAX_QUERY_STRING_BYTES:
            error = UnprocessableEntity()
            error.data = {"message": f"the query string is longer than {MAX_QUERY_STRING_BYTES} bytes"}
            raise error

    register_docs_assets(app)
    api = CoinquoteApi(app)
    register_error_handlers(app, api)
    api.register_blueprint(quotes_api.blp)
    register_usage(app, api)
    api.register_blueprint(health_api.blp)
    api.register_blueprint(history_api.blp)
    chart.register_chart(app)
    app.cli.add_command(history_cli.history)
    app.cli.add_command(refresh_command)
