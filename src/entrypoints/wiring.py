"""The one typed way the entrypoints reach what src/bootstrap.py built for their app."""

from __future__ import annotations

from flask import Flask, current_app

from src.bootstrap import Wiring

_EXTENSION = "coinquote"  # the only key coinquote keeps in `app.extensions`


def install(app: Flask, built: Wiring) -> None:
    app.extensions[_EXTENSION] = built


def wiring(app: Flask | None = None) -> Wiring:
    """What was built for `app` (default: the app handling this request or command)."""
    built: Wiring = (app or current_app).extensions[_EXTENSION]
    return built
