"""Per-client rate limit on the quotes API (RATE_LIMIT), shared across workers via memcached."""

from __future__ import annotations

import logging

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from src.entrypoints.settings import Settings

logger = logging.getLogger(__name__)


def register_rate_limit(app: Flask, settings: Settings) -> Limiter | None:
    """Limit each client (by address, as ProxyFix resolved it) on /api/; off when unset.

    Counters live in memcached when it is configured, so every worker and replica shares them;
    if memcached fails, limiting falls back to each process's memory instead of failing requests.
    """
    if not settings.rate_limit:
        return None
    storage = (
        "memcached://" + ",".join(settings.memcached_servers)
        if settings.memcached_servers
        else "memory://"
    )
    limiter = Limiter(
        get_remote_address,
        app=app,
        default_limits=[settings.rate_limit],
        storage_uri=storage,
        storage_options=({"connect_timeout": 0.25, "timeout": 0.25}  # type: ignore[dict-item]
                         if settings.memcached_servers else {}),
        strategy="moving-window" if not settings.memcached_servers else "fixed-window",
        headers_enabled=True,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix=f"{settings.cache_namespace}:rl",  # deployments sharing memcached stay apart
    )

    @limiter.request_filter
    def only_the_api() -> bool:
        return not request.path.startswith("/api/")

    return limiter
