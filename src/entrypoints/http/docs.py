"""Swagger UI and ReDoc assets served by the app itself (no CDN, works offline).

RapiDoc is left out on purpose: its bundle fetches fonts from Google, which breaks the promise
that the docs pages need nothing but this server. The pages also carry a Content-Security-Policy
that allows only this server, so nothing in a bundle (ReDoc's footer logo, say) reaches out.
"""

from __future__ import annotations

import openapi_ui_bundles
from flask import Blueprint, Flask, Response, request

ASSETS_URL = "docs-assets"

# Relative asset URLs: the pages sit at the root, and relative URLs survive an nginx path prefix.
DOCS_CONFIG = {
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/swagger-ui",
    "OPENAPI_SWAGGER_UI_URL": f"{ASSETS_URL}/swagger_ui/",
    "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},
    "OPENAPI_REDOC_PATH": "/redoc",
    "OPENAPI_REDOC_URL": f"{ASSETS_URL}/redoc/redoc.standalone.js",
}


DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' blob:",  # the page templates start the UIs inline
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ]
)


def register_docs_assets(app: Flask) -> None:
    """Serve the UI bundles of the `openapi-ui-bundles` wheel under /docs-assets/<ui>/."""
    for name in ("swagger_ui", "redoc"):
        app.register_blueprint(
            Blueprint(
                f"{name}_assets",
                __name__,
                static_folder=str(getattr(openapi_ui_bundles, name).static_path),
                static_url_path=f"/{ASSETS_URL}/{name}",
            )
        )

    @app.after_request
    def docs_security_headers(response: Response) -> Response:
        endpoint = request.endpoint or ""
        if endpoint.startswith("api-docs.openapi_") and response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = DOCS_CSP
        return response
