"""Settings: read once from the environment, validated, turned into Flask configuration."""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import urlsplit

from limits import parse as parse_limit
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from src.adapters.cache.keys import NAMESPACE_PART, key_namespace
from src.adapters.coinmarketcap import PRODUCTION_URL, SANDBOX_KEY, SANDBOX_URL
from src.domain.errors import InvalidSymbol
from src.domain.model import normalise_symbol

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///coinquote.db"  # relative: Flask-SQLAlchemy puts it in instance/
# Loopback only: safe when gunicorn is reached directly, and right for an nginx on the same host.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")
_WHOLE_NUMBER_RE = re.compile(r"-?[0-9]+", re.ASCII)
_RATE_LIMIT_RE = re.compile(r"\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?", re.I)

# The bounds of what works (issue 21): memcached reads a lifetime over 30 days as a Unix date
# (so an entry, an edge document or a counter would expire at once); a time span far beyond a
# year overflows the date arithmetic of every request (a 500) or of start-up.
_MEMCACHED_MAX_SECONDS = 30 * 86400
_DAY = 86400
_YEAR = 365 * _DAY
_MAX_COUNT = 10**9
_MAX_HISTORY_DAYS = 36_500  # a century; older cutoffs reach before the Unix epoch


class ConfigError(ValueError):
    """A configuration variable has a bad value; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment (README "Configuration")."""

    cmc_api_key: str = field(repr=False)
    cmc_base_url: str
    database_url: str = DEFAULT_DATABASE_URL
    memcached_servers: tuple[str, ...] = ()
    cache_ttl_seconds: int = 60
    base_currency: str = "USD"
    cache_namespace: str = "coinquote"  # with base_currency, names every shared memcached key
    quote_max_age_seconds: int = 300
    refresh_window_seconds: int = 900  # 0: refresh-ahead off
    refresh_interval_seconds: float | None = None  # None: derived from the credit budget
    cmc_daily_credits: int | None = None  # None: from CoinMarketCap's key info, else 333
    cmc_calls_per_minute: int | None = None  # None: from CoinMarketCap's key info, else 30
    convert_credit_share: float = 0.5
    history_full_days: int = 7
    history_hourly_days: int = 90
    rate_limit: str | None = None
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES
    log_format: str = "text"
    log_level: str = "INFO"
    uses_sandbox: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from `env`; raise ConfigError naming the first bad variable."""
        key = _api_key(env)
        uses_sandbox = not key
        if uses_sandbox:
            key = SANDBOX_KEY
        base_url = _url(env, "CMC_BASE_URL", SANDBOX_URL if uses_sandbox else PRODUCTION_URL)
        return cls(
            cmc_api_key=key,
            cmc_base_url=base_url,
            database_url=_database_url(env),
            memcached_servers=_servers(env),
            cache_ttl_seconds=_int(env, "CACHE_TTL_SECONDS", 60, minimum=1,
                                   maximum=_MEMCACHED_MAX_SECONDS, unit="seconds (30 days:"
                                   " memcached reads a longer lifetime as a date)"),
            base_currency=_currency(env, "BASE_CURRENCY", "USD"),
            cache_namespace=_cache_namespace(env),
            quote_max_age_seconds=_int(env, "QUOTE_MAX_AGE_SECONDS", 300, minimum=1,
                                       maximum=_YEAR, unit="seconds (a year)"),
            refresh_window_seconds=_int(env, "REFRESH_WINDOW_SECONDS", 900, minimum=0,
                                        maximum=_YEAR, unit="seconds (a year)"),
            refresh_interval_seconds=_seconds(env, "REFRESH_INTERVAL_SECONDS", minimum=1,
                                              maximum=_DAY, unit="seconds (a day)"),
            cmc_daily_credits=_int(env, "CMC_DAILY_CREDITS", None, minimum=1,
                                   maximum=_MAX_COUNT),
            cmc_calls_per_minute=_int(env, "CMC_CALLS_PER_MINUTE", None, minimum=1,
                                      maximum=_MAX_COUNT),
            convert_credit_share=_share(env, "CONVERT_CREDIT_SHARE", 0.5),
            history_full_days=_history_days(env, "HISTORY_FULL_DAYS", 7),
            history_hourly_days=_history_hourly_days(env),
            rate_limit=_rate_limit(env),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES),
            log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
            log_level=_choice(env, "LOG_LEVEL", "info",
                              ("debug", "info", "warning", "error")).upper(),
            uses_sandbox=uses_sandbox,
        )

    @property
    def key_namespace(self) -> str:
        """`CACHE_NAMESPACE:BASE_CURRENCY`: what every key this deployment shares starts with."""
        return key_namespace(self.cache_namespace, self.base_currency)

    def to_flask_config(self) -> dict[str, Any]:
        """The Flask and extension configuration keys (the only place they are spelled out)."""
        return {"SQLALCHEMY_DATABASE_URI": self.database_url,
                "SQLALCHEMY_ENGINE_OPTIONS": self.engine_options()}

    def engine_options(self) -> dict[str, Any]:
        """SQLAlchemy's engine options for DATABASE_URL (the session's and the reader's)."""
        # No pre-ping (a round trip per request): a connection found dead fails one query,
        # which the service survives, and SQLAlchemy then replaces the whole pool.
        options: dict[str, Any] = {"pool_recycle": 1800}
        if self.database_url.startswith("postgresql"):
            options["connect_args"] = {"connect_timeout": 3}
            # The coin upsert (ON CONFLICT) is not batched by default: one round trip per row.
            options["executemany_mode"] = "values_plus_batch"
        return options


def _api_key(env: Mapping[str, str]) -> str:
    """CMC_API_KEY, or the content of the file CMC_API_KEY_FILE names (Docker secrets)."""
    key = _key_text(env)
    # Sent as an HTTP header: a space, a control or non-ASCII character (a pasted quote mark, a
    # second line) would fail every call instead of start-up. The key itself is never echoed.
    if key and not (key.isascii() and key.isprintable() and " " not in key):
        name = "CMC_API_KEY_FILE" if _raw(env, "CMC_API_KEY_FILE") else "CMC_API_KEY"
        raise ConfigError(f"{name}: the key holds a space, a control or a non-ASCII character")
    return key


def _key_text(env: Mapping[str, str]) -> str:
    key = (env.get("CMC_API_KEY") or "").strip()
    path = _raw(env, "CMC_API_KEY_FILE")
    if path is None:
        return key
    if key:
        raise ConfigError("set CMC_API_KEY or CMC_API_KEY_FILE, not both")
    try:
        with open(path, encoding="utf-8") as handle:
            from_file = handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"CMC_API_KEY_FILE cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError("CMC_API_KEY_FILE is not UTF-8 text") from None
    if not from_file:
        raise ConfigError("CMC_API_KEY_FILE names an empty file")
    return from_file


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


@overload
def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int,
         unit: str = "") -> int: ...
@overload
def _int(env: Mapping[str, str], name: str, default: None, *, minimum: int, maximum: int,
         unit: str = "") -> int | None: ...


def _int(env: Mapping[str, str], name: str, default: int | None, *, minimum: int,
         maximum: int, unit: str = "") -> int | None:
    raw = _raw(env, name)
    if raw is None:
        return default
    # ASCII digits only: int() would also take "1_000", "+5" and other scripts' digits.
    value = int(raw) if _WHOLE_NUMBER_RE.fullmatch(raw) else None
    if value is None or not minimum <= value <= maximum:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ConfigError(f"{name} must be a whole number from {minimum} to {maximum}"
                          f"{' ' + unit if unit else ''}, got {shown!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, *, minimum: float, maximum: float,
             unit: str) -> float | None:
    """A duration in seconds, fractions allowed (e.g. 4.8); None when unset."""
    raw = _raw(env, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:  # also refuses nan and inf
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ConfigError(f"{name} must be a number from {minimum:g} to {maximum:g} {unit},"
                          f" got {shown!r}")
    return value


def _history_days(env: Mapping[str, str], name: str, default: int) -> int:
    return _int(env, name, default, minimum=1, maximum=_MAX_HISTORY_DAYS, unit="days (a century)")


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number from 0 to 1, got {raw!r}") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise ConfigError(f"{name} must be a number from 0 to 1, got {raw!r}")
    return value


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    # The value is never echoed: a URL may carry credentials.
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:  # an unbalanced IPv6 bracket, a port out of range
        raise ConfigError(f"{name} is not a valid URL ({_reason(exc)})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL with a host")
    if port == 0:
        raise ConfigError(f"{name} has port 0; ports run from 1 to 65535")
    return raw.rstrip("/")


def _database_url(env: Mapping[str, str]) -> str:
    raw = _raw(env, "DATABASE_URL")
    if raw is None:
        return DEFAULT_DATABASE_URL
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; we ship psycopg2.
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            raw = "postgresql+psycopg2://" + raw[len(prefix):]
    # The value is never echoed, nor the parser's error chained: both can hold the password.
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError, TypeError):
        url = None
    if url is None:
        raise ConfigError("DATABASE_URL is not a valid URL (expected postgresql+psycopg2://"
                          "user:password@host:port/db; is the host missing?)")
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError("DATABASE_URL must be a postgresql+psycopg2:// or sqlite:// URL")
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigError(f"DATABASE_URL has port {url.port}; ports run from 1 to 65535")
    return raw


def _reason(exc: ValueError) -> str:
    """urllib's own words, which never quote the value (checked for 3.11's messages)."""
    text = str(exc)
    return text if text in ("Invalid IPv6 URL", "Port out of range 0-65535") else "unparsable"


def _history_hourly_days(env: Mapping[str, str]) -> int:
    full = _history_days(env, "HISTORY_FULL_DAYS", 7)
    hourly = _history_days(env, "HISTORY_HOURLY_DAYS", 90)
    if hourly < full:
        raise ConfigError(f"HISTORY_HOURLY_DAYS must be at least HISTORY_FULL_DAYS ({full}),"
                          f" got {hourly}")
    return hourly


def _servers(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _raw(env, "MEMCACHED_SERVERS")
    if raw is None:
        return ()
    servers = tuple(s.strip() for s in raw.split(",") if s.strip())
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"MEMCACHED_SERVERS must be host:port[,host:port...], got {server!r}")
    return servers


def _networks(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma list of addresses or CIDR networks, as gunicorn's forwarded_allow_ips takes it."""
    raw = _raw(env, name)
    if raw is None:
        return default
    networks = tuple(n.strip() for n in raw.split(",") if n.strip())
    for network in networks:
        try:
            # strict, like gunicorn: 10.0.0.1/8 (host bits set) is a typo, not a network
            ipaddress.ip_network(network)
        except ValueError:
            raise ConfigError(f"{name} must be IP addresses or networks such as 10.0.0.0/8,"
                              f" got {network!r}") from None
    if not networks:
        raise ConfigError(f"{name} names no address")
    return networks


def _currency(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        return normalise_symbol(raw)
    except InvalidSymbol:
        raise ConfigError(f"{name} must be a currency symbol such as USD, got {raw!r}") from None


def _cache_namespace(env: Mapping[str, str]) -> str:
    raw = _raw(env, "CACHE_NAMESPACE")
    if raw is None:
        return "coinquote"
    if not NAMESPACE_PART.fullmatch(raw):
        raise ConfigError(f"CACHE_NAMESPACE must be 1-32 letters, digits, '_' or '-', got {raw!r}")
    return raw


def _rate_limit(env: Mapping[str, str]) -> str | None:
    raw = _raw(env, "RATE_LIMIT")
    if raw is None:
        return None
    if not _RATE_LIMIT_RE.fullmatch(raw):
        raise ConfigError(f"RATE_LIMIT must look like '120/minute', got {raw!r}")
    limit = parse_limit(raw)
    if limit.amount < 1:  # 0/minute would refuse every request
        raise ConfigError(f"RATE_LIMIT must allow at least 1 request, got {raw!r}")
    if limit.get_expiry() > _MEMCACHED_MAX_SECONDS:
        raise ConfigError(f"RATE_LIMIT must count over 30 days at most (memcached reads a longer"
                          f" lifetime as a date), got {raw!r}")
    return raw


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw.lower()
