"""deploy/nginx.conf, deploy/coinquote-edge.js and the app agree on the edge: the same key names,
the same symbol rules, the same request-id rule (the e2e tier runs them together for real)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from src.adapters.cache.keys import (
    EDGE_VERSION,
    edge_key,
    edge_list_digest,
    edge_list_key,
    key_namespace,
)
from src.domain.model import MAX_SYMBOL_LENGTH, MAX_SYMBOLS_PER_REQUEST
from src.entrypoints.observability import REQUEST_ID_PATTERN

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONF = (DEPLOY / "nginx.conf").read_text()
JS = (DEPLOY / "coinquote-edge.js").read_text()


def test_the_script_builds_the_apps_keys():
    namespace = key_namespace("coinquote", "USD")

    assert f"var VERSION = '{EDGE_VERSION}';" in JS
    assert "var prefix = ns + ':edge:' + VERSION + ':';" in JS
    assert "prefix + list[0] : prefix + 'list:' + digest(list)" in JS
    assert edge_key(namespace, "BTC") == f"coinquote:USD:edge:{EDGE_VERSION}:BTC"
    assert "createHash('sha256').update(list.join(','))" in JS
    assert edge_list_key(namespace, edge_list_digest(("BTC", "ETH"))) == (
        f"coinquote:USD:edge:{EDGE_VERSION}:list:{hashlib.sha256(b'BTC,ETH').hexdigest()}")


def test_the_script_accepts_what_the_app_accepts_and_no_more():
    assert "var SYMBOL = /^[A-Za-z0-9]{1," + str(MAX_SYMBOL_LENGTH) + "}$/;" in JS
    assert f"var MAX_SYMBOLS = {MAX_SYMBOLS_PER_REQUEST};" in JS
    assert "process.env.CACHE_NAMESPACE || 'coinquote'" in JS
    assert "process.env.BASE_CURRENCY || 'USD'" in JS
    assert "env CACHE_NAMESPACE;" in CONF and "env BASE_CURRENCY;" in CONF


def test_nginx_keeps_a_clients_request_id_only_when_the_app_would():
    rule = re.search(r'map \$http_x_request_id \$coinquote_request_id \{\s*default \$request_id;'
                     r'\s*"~\^(.+)\$" \$http_x_request_id;', CONF)

    assert rule is not None
    assert rule.group(1) == REQUEST_ID_PATTERN


def test_misses_and_memcached_trouble_fall_through_to_the_app():
    location = CONF.split("location = /api/v1/quotes {")[1].split("\n        }\n")[0]

    assert "error_page 404 418 502 504 = @app;" in location
    assert "memcached_pass coinquote_memcached;" in location
    assert "limit_req zone=coinquote_clients" in location
    assert 'add_header Cache-Control "public, max-age=0" always;' in location
