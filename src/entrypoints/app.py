"""create_app: the Flask application (src/bootstrap.py builds and wires everything else)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask, request
from flask_migrate import Migrate
from werkzeug.exceptions import UnprocessableEntity

from src.adapters.sql.orm import db
from src.bootstrap import Database, Overrides, bootstrap
from src.domain.history import HistoryRepository
from src.domain.ports import (
    Clock,
    CreditGovernor,
    QuoteCache,
    QuoteProvider,
    QuoteRepository,
    RefreshLease,
    RequestLog,
)
from src.entrypoints.cli.history import history as history_command
from src.entrypoints.cli.refresh import refresh as refresh_command
from src.entrypoints.flask_app import CoinquoteFlask
from src.entrypoints.http import health
from src.entrypoints.http.caching import register_http_caching
from src.entrypoints.http.chart import register_chart
from src.entrypoints.http.docs import DOCS_CONFIG, register_docs_assets
from src.entrypoints.http.errors import CoinquoteApi, register_error_handlers
from src.entrypoints.http.history import resources as history
from src.entrypoints.http.quotes import resources as quotes
from src.entrypoints.http.usage import resources as usage
from src.entrypoints.http.usage.resources import register_usage_gauges
from src.entrypoints.jsonio import ExactJSONProvider
from src.entrypoints.logs import configure_logging
from src.entrypoints.observability import register_observability
from src.entrypoints.proxies import TrustedProxyFix
from src.entrypoints.rate_limit import register_rate_limit
from src.entrypoints.settings import Settings
from src.entrypoints.wiring import install

logger = logging.getLogger(__name__)

# The API's resources, in the OpenAPI document's order.
BLUEPRINTS = (quotes.blp, usage.blp, health.blp, history.blp)
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
                " `/api/v1/quotes/history`, drawn as a chart at"
                " [/chart?symbol=BTC](chart?symbol=BTC)."
                "\n\nClients need no credentials: the CoinMarketCap key"
                " stays on the server."
            )
        },
        # Clients authenticate with nothing: the CoinMarketCap key never leaves the server.
        "security": [],
    },
}


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
    """The Flask application over what src/bootstrap.py builds; each port may be replaced
    (tests pass fakes here)."""
    settings = settings or Settings.from_env(os.environ)
    overrides = Overrides(provider=provider, repository=repository, cache=cache, clock=clock,
                          request_log=request_log, refresh_lease=refresh_lease,
                          history_repository=history_repository, governor=governor)
    configure_logging(settings.log_format, settings.cmc_api_key, settings.log_level)
    app = CoinquoteFlask("src")
    app.config.update(settings.to_flask_config())
    app.config.update(API_CONFIG)
    app.config.update(DOCS_CONFIG)
    app.json = ExactJSONProvider(app)
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, settings.trusted_proxies,  # type: ignore[method-assign]
                                   x_for=1, x_proto=1, x_host=1, x_prefix=1)
    install(app, bootstrap(settings, open_database(app, overrides), overrides))
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


def open_database(app: Flask, overrides: Overrides) -> Database | None:
    """Flask-SQLAlchemy's session over DATABASE_URL, and the migrations, unless every port on
    the database was replaced (tests). With the quote repository replaced, only the history
    uses the session: nothing is migrated and no engine is handed over."""
    if overrides.repository is not None and overrides.history_repository is not None:
        return None
    db.init_app(app)
    if overrides.repository is not None:
        return Database(session=db.session, engine=None, context=app.app_context)
    Migrate(app, db, directory=str(MIGRATIONS_DIR))
    with app.app_context():
        engine = db.engine
    return Database(session=db.session, engine=engine, context=app.app_context)


MAX_QUERY_STRING_BYTES = 4096  # 100 symbols of 20 characters need about 2,100


def register_api(app: Flask) -> None:
    register_observability(app)

    @app.before_request
    def bound_the_query_string() -> None:
        if len(request.query_string) > MAX_QUERY_STRING_BYTES:
            error = UnprocessableEntity()
            error.data = {  # type: ignore[attr-defined]  # read by the error handlers
                "message": f"the query string is longer than {MAX_QUERY_STRING_BYTES} bytes"}
            raise error

    register_docs_assets(app)
    api = CoinquoteApi(app)
    register_error_handlers(app, api)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    register_usage_gauges(app)
    register_chart(app)
    app.cli.add_command(history_command)
    app.cli.add_command(refresh_command)
