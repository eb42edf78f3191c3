"""deploy/nginx.conf and the app agree on the fast path: the key nginx builds is the key the app
writes, for every symbol the app accepts."""

from __future__ import annotations

import re
from pathlib import Path

from src.adapters.cache.edge_documents import EDGE_KEY_PREFIX, edge_key
from src.domain.model import MAX_SYMBOL_LENGTH

CONF = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()


def test_nginx_builds_the_apps_key_prefix():
    key_map = re.search(
        r"map \$coinquote_edge_symbol \$coinquote_edge_key \{\s*default \"([^$\"]*)", CONF)

    assert key_map is not None
    assert key_map.group(1) == EDGE_KEY_PREFIX
    assert edge_key("BTC") == EDGE_KEY_PREFIX + "BTC"


def test_nginx_upper_cases_every_character_of_the_longest_symbol():
    eligible = re.search(r'"~\^\(GET\|HEAD\)\\\?symbol=\(\?<s>\[A-Za-z0-9\]\{1,(\d+)\}\)\$"', CONF)
    upper_maps = re.findall(r"map \$cq_c(\d+) \$cq_u\1 \{", CONF)

    assert eligible is not None and int(eligible.group(1)) == MAX_SYMBOL_LENGTH
    assert sorted(map(int, upper_maps)) == list(range(1, MAX_SYMBOL_LENGTH + 1))
    for n in range(1, MAX_SYMBOL_LENGTH + 1):
        assert f"$cq_u{n}" in CONF.split("$coinquote_edge_key {")[1].split("}")[0]


def test_misses_and_memcached_trouble_fall_through_to_the_app():
    location = CONF.split("location = /api/v1/quotes {")[1].split("\n        }\n")[0]

    assert "error_page 404 418 502 504 = @app;" in location
    assert "memcached_pass coinquote_memcached;" in location
    assert "limit_req zone=coinquote_clients" in location
