"""create_app: the composition root. The only place adapters are built and wired."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from flask_caching import Cache
from flask_migrate import Migrate
from werkzeug.exceptions import UnprocessableEntity
from werkzeug.middleware.proxy_fix import ProxyFix

from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.adapters.orm import db
from src.adapters.quote_cache import FlaskCachingQuoteCache
from src.adapters.sql_history import SqlHistoryRepository
from src.adapters.sql_repository import SqlQuoteRepository
from src.domain.clock import SystemClock
from src.domain.history import HistoryRepository, HistoryService, RetentionPolicy
from src.domain.ports import Clock, QuoteCache, QuoteProvider, QuoteRepository
from src.domain.service import QuoteService
from src.entrypoints import chart, health_api, history_api, history_cli, quotes_api
from src.entrypoints.docs import DOCS_CONFIG, register_docs_assets
from src.entrypoints.errors import CoinquoteApi, register_error_handlers
from src.entrypoints.jsonio import ExactJSONProvider
from src.entrypoints.logs import configure_logging
from src.entrypoints.observability import register_observability
from src.entrypoints.rate_limit import register_rate_limit
from src.entrypoints.render import QuoteRenderer
from src.entrypoints.settings import Settings

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
    history_repository: HistoryRepository | None = None,
) -> Flask:
    """Build the application; each port may be replaced (tests pass fakes here)."""
    settings = settings or Settings.from_env(os.environ)
    configure_logging(settings.log_format, settings.cmc_api_key, settings.log_level)
    app = Flask("src")
    app.config.update(settings.to_flask_config())
    app.config.update(API_CONFIG)
    app.config.update(DOCS_CONFIG)
    app.json = ExactJSONProvider(app)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)

    service = QuoteService(
        provider=provider or build_provider(settings),
        repository=(repository := repository or build_repository(app)),
        cache=(cache := cache or build_cache(app)),
        clock=clock or SystemClock(),
        base_currency=settings.base_currency,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        max_age=(
            timedelta(seconds=settings.quote_max_age_seconds)
            if settings.quote_max_age_seconds
            else None
        ),
    )
    app.extensions["coinquote"] = Services(settings, service, repository, cache, QuoteRenderer())
    app.extensions["history"] = build_history(app, settings, history_repository, clock or SystemClock())
    register_rate_limit(app, settings)
    register_api(app)
    if settings.uses_sandbox:
        logger.warning(
            "CMC_API_KEY is not set: using the CoinMarketCap SANDBOX (%s) and its public test"
            " key. The sandbox serves mock data; set CMC_API_KEY for real quotes.",
            settings.cmc_base_url,
        )
    return app


def build_provider(settings: Settings) -> QuoteProvider:
    return CoinMarketCapProvider(base_url=settings.cmc_base_url, api_key=settings.cmc_api_key)


def build_repository(app: Flask) -> QuoteRepository:
    db.init_app(app)
    Migrate(app, db, directory=str(MIGRATIONS_DIR))
    return SqlQuoteRepository(db.session)


def build_history(app: Flask, settings: Settings, repository: HistoryRepository | None,
                  clock: Clock) -> HistoryService:
    if repository is None:
        if "sqlalchemy" not in app.extensions:  # the quote repository was replaced
            db.init_app(app)
        repository = SqlHistoryRepository(db.session)
    policy = RetentionPolicy(settings.history_full_days, settings.history_hourly_days)
    return HistoryService(repository, clock, settings.base_currency, policy)


def build_cache(app: Flask) -> QuoteCache:
    return FlaskCachingQuoteCache(Cache(app))


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
    api.register_blueprint(health_api.blp)
    api.register_blueprint(history_api.blp)
    chart.register_chart(app)
    app.cli.add_command(history_cli.history)
