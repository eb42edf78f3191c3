"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi db upgrade`."""

from src.entrypoints.app import create_app

app = create_app()
