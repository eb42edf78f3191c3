"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi db upgrade`."""

import sys

from src.entrypoints.app import create_app
from src.entrypoints.settings import ConfigError

try:
    app = create_app()
except ConfigError as exc:  # a bad variable: say which, without a traceback
    sys.exit(f"coinquote: configuration error: {exc}")
