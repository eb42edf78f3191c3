"""Entrypoints: the Flask application, its settings, HTTP schemas and the composition root."""
