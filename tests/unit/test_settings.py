"""Settings from the environment: defaults, validation that names the variable."""

from __future__ import annotations

import pytest

from src.adapters.cache.local import LocalCache
from src.adapters.cache.memcached import PymemcacheCache
from src.adapters.coinmarketcap import PRODUCTION_URL, SANDBOX_KEY, SANDBOX_URL
from src.bootstrap import cache_backend
from src.entrypoints.settings import ConfigError, Settings


def test_defaults_without_a_key_use_the_sandbox():
    settings = Settings.from_env({})

    assert (settings.cmc_api_key, settings.cmc_base_url, settings.uses_sandbox) == (SANDBOX_KEY, SANDBOX_URL, True)
    assert settings.database_url.startswith("sqlite:///")
    assert settings.memcached_servers == ()
    assert (settings.cache_ttl_seconds, settings.base_currency, settings.quote_max_age_seconds) == (60, "USD", 300)
    assert isinstance(cache_backend(settings), LocalCache)


def test_a_key_selects_production():
    settings = Settings.from_env({"CMC_API_KEY": "k"})

    assert (settings.cmc_base_url, settings.uses_sandbox) == (PRODUCTION_URL, False)


def test_values_are_read():
    settings = Settings.from_env({
        "CMC_API_KEY": "k", "CMC_BASE_URL": "http://127.0.0.1:8001/",
        "DATABASE_URL": "postgresql://u:p@db/coinquote", "MEMCACHED_SERVERS": "m1:11211, m2:11212",
        "CACHE_TTL_SECONDS": "30", "BASE_CURRENCY": "eur", "QUOTE_MAX_AGE_SECONDS": "600",
        "RATE_LIMIT": "120/minute", "LOG_FORMAT": "JSON",
    })

    assert settings.cmc_base_url == "http://127.0.0.1:8001"
    assert settings.database_url == "postgresql+psycopg2://u:p@db/coinquote"
    assert settings.memcached_servers == ("m1:11211", "m2:11212")
    assert (settings.cache_ttl_seconds, settings.base_currency, settings.quote_max_age_seconds) == (30, "EUR", 600)
    assert (settings.rate_limit, settings.log_format) == ("120/minute", "json")
    backend = cache_backend(settings)  # pymemcache connects lazily: no socket here
    assert isinstance(backend, PymemcacheCache)
    assert backend.servers == ("m1:11211", "m2:11212")


def test_the_key_is_not_in_the_repr():
    assert "s3cret" not in repr(Settings.from_env({"CMC_API_KEY": "s3cret"}))


@pytest.mark.parametrize(
    "name, value",
    [
        ("CACHE_TTL_SECONDS", "sixty"),
        ("CACHE_TTL_SECONDS", "0"),
        ("QUOTE_MAX_AGE_SECONDS", "-5"),
        ("CMC_BASE_URL", "not a url"),
        ("CMC_BASE_URL", "ftp://x"),
        ("DATABASE_URL", "::nonsense::"),
        ("DATABASE_URL", "mysql://u@h/db"),
        ("MEMCACHED_SERVERS", "host-without-port"),
        ("MEMCACHED_SERVERS", "h:99999"),
        ("MEMCACHED_SERVERS", "h:0"),
        ("TRUSTED_PROXIES", "nginx"),
        ("TRUSTED_PROXIES", "10.0.0.1/8"),
        ("TRUSTED_PROXIES", "*"),
        ("BASE_CURRENCY", "U S D"),
        ("RATE_LIMIT", "lots"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_the_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "cmc_api_key"
    secret.write_text("from-a-secret-file\n")

    settings = Settings.from_env({"CMC_API_KEY_FILE": str(secret)})

    assert (settings.cmc_api_key, settings.uses_sandbox) == ("from-a-secret-file", False)


@pytest.mark.parametrize("content", [None, "  \n"])
def test_a_missing_or_empty_key_file_stops_start_up(tmp_path, content):
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ConfigError, match="CMC_API_KEY_FILE"):
        Settings.from_env({"CMC_API_KEY_FILE": str(path)})


def test_key_and_key_file_together_are_refused(tmp_path):
    (tmp_path / "key").write_text("k")

    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env({"CMC_API_KEY": "k", "CMC_API_KEY_FILE": str(tmp_path / "key")})


BAD_KEYS = {"pasted ellipsis": "5f1c0e7a\u2026b2", "inner space": "5f1c 0e7a",
            "second line": "5f1c0e7a\nb2c3", "control character": "5f1c\x000e7a"}


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_key_no_http_header_can_carry_stops_start_up_without_echoing_it(tmp_path, key):
    (tmp_path / "key").write_text(key)

    with pytest.raises(ConfigError, match="^CMC_API_KEY:") as from_env:
        Settings.from_env({"CMC_API_KEY": key})
    with pytest.raises(ConfigError, match="^CMC_API_KEY_FILE:") as from_file:
        Settings.from_env({"CMC_API_KEY_FILE": str(tmp_path / "key")})

    for raised in (from_env, from_file):
        assert "5f1c" not in str(raised.value) and raised.value.__cause__ is None


def test_a_key_file_that_is_not_text_stops_start_up_naming_the_variable(tmp_path):
    (tmp_path / "key").write_bytes(b"\xff\xfe5f1c0e7a")

    with pytest.raises(ConfigError, match="CMC_API_KEY_FILE is not UTF-8"):
        Settings.from_env({"CMC_API_KEY_FILE": str(tmp_path / "key")})


SECRET = "S3cret"


@pytest.mark.parametrize(
    "name, value",
    [
        ("DATABASE_URL", f"postgresql://app:{SECRET}/db"),  # the host forgotten: the password parses as a port
        ("DATABASE_URL", f"postgresql+psycopg2://app:{SECRET}@db:99999/coinquote"),
        ("DATABASE_URL", f"postgresql://app:{SECRET}@db:0/coinquote"),
        ("CMC_BASE_URL", f"http://app:{SECRET}@[::1"),
        ("CMC_BASE_URL", f"http://app:{SECRET}@cmc.example:99999"),
        ("CMC_BASE_URL", f"https://app:{SECRET}@cmc.example:{SECRET}"),
        ("CMC_BASE_URL", f"https://app:{SECRET}@cmc.example:0"),
        ("CMC_BASE_URL", f"https://app:{SECRET}@/v1"),
    ],
)
def test_a_bad_url_stops_start_up_naming_the_variable_and_never_the_password(name, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({name: value})

    message = str(raised.value)
    assert message.startswith(name) and "\n" not in message
    assert SECRET not in message
    # nothing chained: a traceback would print the parser's error, which quotes the value
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_ports_at_the_edges_of_the_range_are_accepted():
    settings = Settings.from_env({"CMC_BASE_URL": "http://127.0.0.1:65535",
                                  "DATABASE_URL": "postgresql://u:p@db:1/coinquote",
                                  "MEMCACHED_SERVERS": "m:65535"})

    assert settings.cmc_base_url.endswith(":65535")
    assert settings.database_url == "postgresql+psycopg2://u:p@db:1/coinquote"


def test_trusted_proxies_default_to_loopback_only():
    assert Settings.from_env({}).trusted_proxies == ("127.0.0.1", "::1")


def test_trusted_proxies_take_addresses_and_networks():
    settings = Settings.from_env({"TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ,fd00::/8"})

    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.7", "fd00::/8")


def test_the_credit_budget_settings_default_to_reading_the_plan_from_coinmarketcap():
    settings = Settings.from_env({})

    assert (settings.cmc_daily_credits, settings.cmc_calls_per_minute) == (None, None)
    assert settings.convert_credit_share == 0.5


def test_the_credit_budget_settings_are_read():
    settings = Settings.from_env({"CMC_DAILY_CREDITS": "333", "CMC_CALLS_PER_MINUTE": "30",
                                  "CONVERT_CREDIT_SHARE": "0.1"})

    assert (settings.cmc_daily_credits, settings.cmc_calls_per_minute) == (333, 30)
    assert settings.convert_credit_share == 0.1


@pytest.mark.parametrize("name, value", [("CMC_DAILY_CREDITS", "0"), ("CMC_CALLS_PER_MINUTE", "many"),
                                         ("CONVERT_CREDIT_SHARE", "1.5"), ("CONVERT_CREDIT_SHARE", "nan"),
                                         ("CONVERT_CREDIT_SHARE", "half")])
def test_bad_credit_budget_settings_stop_start_up_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("value", ["1_000", "+5", "٣٠", "３０", "30.0"])
def test_a_whole_number_is_written_in_ascii_digits_only(value):
    # int() alone takes underscores, a plus sign and other scripts' digits.
    with pytest.raises(ConfigError, match="CACHE_TTL_SECONDS must be a whole number"):
        Settings.from_env({"CACHE_TTL_SECONDS": value})


@pytest.mark.parametrize("name, value", [
    ("QUOTE_MAX_AGE_SECONDS", "100000000000"),  # every request a 500 (OverflowError)
    ("QUOTE_MAX_AGE_SECONDS", "100000000000000"),  # a traceback at start-up
    ("QUOTE_MAX_AGE_SECONDS", "1e14"),
    ("CACHE_TTL_SECONDS", "2592001"),  # memcached reads it as a 1970 date
    ("REFRESH_WINDOW_SECONDS", "99999999999999"),
    ("REFRESH_INTERVAL_SECONDS", "86401"),
    ("CMC_DAILY_CREDITS", "1" + "0" * 30),
    ("CMC_CALLS_PER_MINUTE", "1" + "0" * 30),
    ("HISTORY_FULL_DAYS", "99999999"),
    ("HISTORY_HOURLY_DAYS", "99999999"),
    ("RATE_LIMIT", "0/minute"),  # refuses everything
    ("RATE_LIMIT", "0 per 1 second"),
    ("RATE_LIMIT", "5/100 days"),  # a counter memcached would expire at once
])
def test_a_value_beyond_what_works_stops_start_up_with_one_line_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({name: value})

    message = str(raised.value)
    assert message.startswith(name) and "\n" not in message
    assert len(message) < 200


def test_the_bounds_themselves_are_accepted():
    settings = Settings.from_env({
        "CACHE_TTL_SECONDS": "2592000", "QUOTE_MAX_AGE_SECONDS": "31536000",
        "REFRESH_WINDOW_SECONDS": "31536000", "REFRESH_INTERVAL_SECONDS": "86400",
        "HISTORY_FULL_DAYS": "36500", "HISTORY_HOURLY_DAYS": "36500",
        "RATE_LIMIT": "1/30 days",
    })

    assert (settings.cache_ttl_seconds, settings.quote_max_age_seconds) == (2592000, 31536000)
    assert settings.rate_limit == "1/30 days"
