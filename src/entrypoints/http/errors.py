"""One table from domain errors to HTTP statuses, rendered in flask-smorest's error body."""

from __future__ import annotations

import math
from typing import Any

import flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException, MethodNotAllowed, default_exceptions

from src.domain.errors import (
    InvalidCurrency,
    InvalidRequest,
    InvalidSymbol,
    ProviderError,
    ProviderTimeout,
    QuoteError,
    Unavailable,
    UnknownSymbols,
)
from src.entrypoints.http.fields import nullable_reference

STATUS_BY_ERROR: dict[type[QuoteError], int] = {
    InvalidRequest: 422,
    UnknownSymbols: 404,
    ProviderError: 502,
    Unavailable: 503,  # CoinMarketCap (ProviderUnavailable) or the stored history
    ProviderTimeout: 504,
}


# The query parameter a domain error is about, for `errors.query.<parameter>` (as webargs' 422s).
PARAMETER_BY_ERROR: dict[type[QuoteError], str] = {
    InvalidCurrency: "convert",
    InvalidSymbol: "symbol",
}


class ErrorSchema(Schema):
    """Every error body (documentation only: handle_http_exception renders it)."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = fields.String(required=True, metadata={"description": "The HTTP status name."})
    message = fields.String(required=True, metadata={"description": "What went wrong."})
    errors = fields.Dict(metadata={
        "description": "Details: `query.<parameter>` (a list of problems) for a bad parameter,"
        " `unknown_symbols`, or CoinMarketCap's numeric `upstream_error_code`."})


def status_for(error: QuoteError) -> int:
    """The status of `error`: its nearest class in the table (a subclass inherits)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


class CoinquoteApi(Api):
    """flask-smorest's Api, with a `message` in every error body and a `servers` entry that
    follows the proxy's path prefix (so "Try it out" works behind nginx under a prefix).

    The document is shaped for generated clients: `Error` requires its fields, a nullable
    nested schema keeps its type, and nothing unused (no pagination) is in it.
    """

    ERROR_SCHEMA = ErrorSchema

    def init_app(self, app: Any, *, spec_kwargs: Any = None) -> None:
        super().init_app(app, spec_kwargs=spec_kwargs)
        self.ma_plugin.converter.add_attribute_function(nullable_reference)

    def _register_pagination_header(self) -> None:
        # flask-smorest's private hook (version pinned in setup.cfg): the X-Pagination header
        # would put an unused PaginationMetadata schema into the document. Nothing is paginated.
        pass

    def _register_responses(self) -> None:
        super()._register_responses()
        # Re-register the catch-all error response with an example (every response has one).
        response = {
            "description": "Any other error (e.g. 405 for a method the path does not allow).",
            "schema": self.ERROR_SCHEMA,
            "example": {"code": 405, "status": "Method Not Allowed",
                        "message": "The method is not allowed for the requested URL."},
        }
        prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _openapi_json(self) -> Any:
        spec = self.spec.to_dict()
        spec["servers"] = [{"url": flask.request.script_root or "/", "description": "This server"}]
        return flask.current_app.response_class(
            flask.json.dumps(spec, indent=2, sort_keys=False), mimetype="application/json"
        )

    def handle_http_exception(self, error: HTTPException) -> Any:
        data = dict(getattr(error, "data", None) or {})
        if "message" not in data:
            messages = data.get("errors") or data.get("messages")
            data["message"] = _summarise(messages) if messages else error.description
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110: a 405 names the allowed methods (werkzeug's own header is not kept).
            data["headers"] = {**data.get("headers", {}), "Allow": ", ".join(error.valid_methods)}
        error.data = data  # type: ignore[attr-defined]
        return super().handle_http_exception(error)


def _summarise(messages: Any) -> str:
    """`{"query": {"symbol": ["..."]}}` -> `Invalid query parameter symbol: ...`."""
    parts = []
    for location, by_name in (messages or {}).items():
        if not isinstance(by_name, dict):
            continue
        for name, problems in by_name.items():
            text = ("; ".join(str(p) for p in problems) if isinstance(problems, list)
                    else str(problems))
            parts.append(f"{location} parameter {name!r}: {text}")
    return ("Invalid " + ", ".join(parts)) if parts else "Invalid request"


MAX_RETRY_AFTER_SECONDS = 86_400  # a client is never told to wait more than a day


def _retry_after_header(seconds: Any) -> str | None:
    """Whole seconds, at least 1 and at most a day; None for a missing or non-finite value."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return None
    if not math.isfinite(seconds):
        return None
    return str(min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(seconds))))


def register_error_handlers(app: Any, api: CoinquoteApi) -> None:
    """Render every domain error as its status, with `Retry-After` when the error knows it."""

    @app.errorhandler(QuoteError)
    def handle_quote_error(error: QuoteError) -> Any:
        exc = default_exceptions[status_for(error)]()
        data: dict[str, Any] = {"message": str(error)}
        if isinstance(error, UnknownSymbols):
            data["errors"] = {"unknown_symbols": list(error.symbols)}
        parameter = next((PARAMETER_BY_ERROR[cls] for cls in type(error).__mro__
                          if cls in PARAMETER_BY_ERROR), None)
        if parameter is not None:  # like every other 422: errors.query.<parameter>
            data["errors"] = {"query": {parameter: [str(error)]}}
        upstream_code = getattr(error, "upstream_code", None)
        if isinstance(upstream_code, int) and not isinstance(upstream_code, bool):
            # CoinMarketCap's numeric code only: its text may hold anything and stays in the log.
            data["errors"] = {"upstream_error_code": upstream_code}
        retry_after = _retry_after_header(getattr(error, "retry_after", None))
        if retry_after is not None:
            data["headers"] = {"Retry-After": retry_after}
        exc.data = data  # type: ignore[attr-defined]
        return api.handle_http_exception(exc)
