"""deploy/nginx.conf, deploy/coinquote-edge.js and the app agree on the edge: the same key names,
the same symbol rules, the same request-id rule (the e2e tier runs them together for real)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from src.adapters.cache.keys import (
    EDGE_VERSION,
    LIST_NAME_MAX,
    NAMESPACE_PART,
    edge_key,
    edge_list_key,
    edge_list_name,
    key_namespace,
)
from src.domain.model import MAX_SYMBOL_LENGTH, MAX_SYMBOLS_PER_REQUEST, parse_symbols
from src.entrypoints.observability import REQUEST_ID_PATTERN

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONF = (DEPLOY / "nginx.conf").read_text()
JS = (DEPLOY / "coinquote-edge.js").read_text()
TEMPLATE = (DEPLOY / "coinquote-namespace.conf.template").read_text()


def nginx_map(header: str, subject: str) -> str:
    """What the nginx.conf `map` opened by `header` gives for `subject`, its regular expressions
    run by Python's `re` (PCRE's `(?<name>` spelled `(?P<name>`; nginx searches unanchored).
    Its `$capture` values are filled in; any other variable reads as `njs`, the one njs sets."""
    block = CONF.split(header + " {")[1].split("    }\n")[0]
    for pattern, value in re.findall(r'^\s*"~(.+)" (\S+);$', block, re.MULTILINE):
        found = re.search(pattern.replace("(?<", "(?P<"), subject)
        if found:
            return re.sub(r"\$(\w+)", lambda m: found.groupdict().get(m.group(1), "njs"), value)
    assert re.search(r'^\s*default "";$', block, re.MULTILINE)
    return ""


def canonical_name(method: str, args: str) -> str:
    """What nginx.conf's `$coinquote_edge_name` gives."""
    return nginx_map('map "$request_method:$args" $coinquote_edge_name', f"{method}:{args}")


def edge_key_of(namespace: str, name: str) -> str:
    """What nginx.conf's `$coinquote_edge_key` gives (`njs` where njs would name it)."""
    return nginx_map('map "$coinquote_namespace $coinquote_edge_name" $coinquote_edge_key',
                     f"{namespace} {name}")


def test_a_list_names_itself_while_its_key_fits_memcached_whatever_the_namespace():
    longest = key_namespace("n" * 32, "C" * MAX_SYMBOL_LENGTH)  # NAMESPACE_PART's and a symbol's
    assert NAMESPACE_PART.pattern == "[A-Za-z0-9_-]{1,32}"
    name = edge_list_name(["ABCD"] * 36 + ["XYZ"])  # 36 * 5 + 3 = 183 characters

    assert edge_list_name(("BTC", "ETH")) == "BTC,ETH"
    assert name == "sha256-" + hashlib.sha256(",".join(["ABCD"] * 36 + ["XYZ"]).encode()).hexdigest()
    assert len(edge_list_key(longest, "A" * LIST_NAME_MAX)) <= 250
    assert edge_key(key_namespace("coinquote", "USD"), "BTC") == f"coinquote:USD:edge:{EDGE_VERSION}:BTC"
    assert edge_list_key(key_namespace("coinquote", "USD"), "BTC,ETH") == (
        f"coinquote:USD:edge:{EDGE_VERSION}:list:BTC,ETH")


@pytest.mark.parametrize("args, name", [
    ("symbol=BTC", "BTC"),
    ("symbol=BTC,ETH,SOL", "list:BTC,ETH,SOL"),
    ("symbol=ETH,BTC", "list:ETH,BTC"),  # another order is another answer
    ("symbol=" + ",".join(f"SYN{n}" for n in range(1, 101)), ""),  # over 180 characters: njs
    ("symbol=" + ",".join(f"S{n}" for n in range(1, 46)),  # 45 symbols in 170 characters
     "list:" + ",".join(f"S{n}" for n in range(1, 46))),
    ("symbol=btc", ""), ("symbol=BTC,eth", ""),  # njs upper-cases
    ("symbol=BTC,ETH,BTC", ""), ("symbol=BTC,BTC", ""), ("symbol=A,B,C,B", ""),  # njs collapses
    ("symbol=BTC&convert=EUR", ""), ("symbol=BTC,", ""), ("symbol=BTC,,ETH", ""),
    ("symbol=BTC%2CETH", ""), ("symbol=" + "A" * 21, ""), ("x=1&symbol=BTC", ""), ("", ""),
])
def test_nginx_names_the_canonical_spelling_as_the_app_does_and_leaves_the_rest_to_njs(args, name):
    assert canonical_name("GET", args) == name
    assert canonical_name("HEAD", args) == name
    assert canonical_name("POST", args) == ""
    if name:  # the app's name for the same request
        symbols = parse_symbols(args.removeprefix("symbol="))
        assert name == (symbols[0] if len(symbols) == 1 else "list:" + edge_list_name(symbols))


def test_nginx_names_a_list_itself_exactly_as_long_as_the_app_does():
    for length in (LIST_NAME_MAX - 1, LIST_NAME_MAX, LIST_NAME_MAX + 1):
        symbols = [f"A{n:04d}" for n in range(29)]
        symbols.append("B" * (length - len(",".join(symbols)) - 1))
        assert len(",".join(symbols)) == length
        named = canonical_name("GET", "symbol=" + ",".join(symbols))
        app = edge_list_name(symbols)
        assert named == ("list:" + app if not app.startswith("sha256-") else ""), length


def test_a_symbol_repeated_anywhere_is_not_canonical():
    symbols = [f"C{n}" for n in range(12)]
    for first in range(12):
        for second in range(first + 1, 12):
            repeated = symbols[:second] + [symbols[first]] + symbols[second:]
            assert canonical_name("GET", "symbol=" + ",".join(repeated)) == "", repeated
    assert canonical_name("GET", "symbol=AB,B,BA,ABC") == "list:AB,B,BA,ABC"  # prefixes differ


def test_nginx_and_the_script_build_the_apps_keys_in_the_apps_namespace():
    namespace = key_namespace("coinquote", "USD")
    assert edge_key_of(namespace, "BTC") == edge_key(namespace, "BTC")
    assert edge_key_of(namespace, "list:BTC,ETH") == edge_list_key(namespace, "BTC,ETH")
    assert edge_key_of("my_deploy-2:EUR", "ETH") == edge_key(key_namespace("my_deploy-2", "EUR"),
                                                             "ETH")
    assert edge_key_of(namespace, "") == "njs"  # any other spelling: njs names it
    for wrong in ("coinquote:usd", "coinquote", "a b:USD", "n" * 33 + ":USD", "${CACHE_NAMESPACE}:USD"):
        assert edge_key_of(wrong, "BTC") == "", wrong  # not the app's: no edge at all
    assert 'set $coinquote_namespace "${CACHE_NAMESPACE}:${BASE_CURRENCY}";' in TEMPLATE
    assert "include /etc/nginx/conf.d/coinquote-namespace.conf;" in CONF

    assert f"var VERSION = '{EDGE_VERSION}';" in JS
    assert f"var LIST_NAME_MAX = {LIST_NAME_MAX};" in JS
    assert "var prefix = ns + ':edge:' + VERSION + ':';" in JS
    assert "prefix + list[0] : prefix + 'list:' + name(list)" in JS
    assert "return 'sha256-' + crypto.createHash('sha256').update(joined).digest('hex');" in JS
    assert "var NAMESPACE = /^[A-Za-z0-9_-]{1,32}:[A-Z0-9]{1," + str(MAX_SYMBOL_LENGTH) + "}$/;" in JS


def test_the_script_accepts_what_the_app_accepts_and_no_more():
    assert ("var ELIGIBLE = /^symbol=[A-Za-z0-9]{1,%d}(,[A-Za-z0-9]{1,%d}){0,%d}$/;"
            % (MAX_SYMBOL_LENGTH, MAX_SYMBOL_LENGTH, MAX_SYMBOLS_PER_REQUEST - 1)) in JS


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
    assert "memcached_buffer_size 64k;" in location
