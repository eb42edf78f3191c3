"""Swagger UI, ReDoc and RapiDoc assets served by the app itself (no CDN, works offline)."""

from __future__ import annotations

import openapi_ui_bundles
from flask import Blueprint, Flask

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
    "OPENAPI_RAPIDOC_PATH": "/rapidoc",
    "OPENAPI_RAPIDOC_URL": f"{ASSETS_URL}/rapidoc/rapidoc-min.js",
}


def register_docs_assets(app: Flask) -> None:
    """Serve the UI bundles of the `openapi-ui-bundles` wheel under /docs-assets/<ui>/."""
    for name in ("swagger_ui", "redoc", "rapidoc"):
        app.register_blueprint(
            Blueprint(
                f"{name}_assets",
                __name__,
                static_folder=str(getattr(openapi_ui_bundles, name).static_path),
                static_url_path=f"/{ASSETS_URL}/{name}",
            )
        )
