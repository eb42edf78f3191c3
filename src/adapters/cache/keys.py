"""The one place cache keys are built (only A-Z a-z 0-9 : _ - and the edge lists' commas, which
memcached and cachelib accept).

Every key one deployment puts in a shared memcached names its deployment and base currency: the
app's entries start with `CACHE_NAMESPACE:` (Flask-Caching's key prefix) and name the currency
(`quote:v1:USD:BTC`); the edge documents start with `key_namespace`, `CACHE_NAMESPACE:BASE`.
nginx builds the edge keys itself (deploy/nginx.conf, deploy/coinquote-edge.js): change them
together.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

KEY_VERSION = "v1"
EDGE_VERSION = "v2"
_KEY_PART = re.compile(r"[A-Z0-9_-]{1,64}")
NAMESPACE_PART = re.compile(r"[A-Za-z0-9_-]{1,32}")


def key_namespace(deployment: str, base_currency: str) -> str:
    """`coinquote:USD`: what every shared key of one deployment and base currency starts with."""
    if not (NAMESPACE_PART.fullmatch(deployment) and _KEY_PART.fullmatch(base_currency)):
        raise ValueError("a namespace is a deployment name and a normalised currency")
    return f"{deployment}:{base_currency}"


def cache_key(currency: str, symbol: str, kind: str = "quote") -> str:
    """`quote:v1:USD:BTC`, or another `kind` of entry about one symbol (`fetch:v1:USD:BTC`).

    The deployment's part is Flask-Caching's key prefix (settings' CACHE_KEY_PREFIX)."""
    if not (_KEY_PART.fullmatch(currency) and _KEY_PART.fullmatch(symbol)):
        raise ValueError("cache key parts must be normalised symbols")
    return f"{kind}:{KEY_VERSION}:{currency}:{symbol}"


def fetch_key(currency: str, symbol: str) -> str:
    """The key of the claim on fetching `symbol` in `currency` (per symbol, not per request)."""
    return cache_key(currency, symbol, kind="fetch")


def currency_key(currency: str) -> str:
    """The key remembering whether `currency` exists as a conversion target."""
    if not _KEY_PART.fullmatch(currency):
        raise ValueError("cache key parts must be normalised currencies")
    return f"currency:{KEY_VERSION}:{currency}"


def edge_key(namespace: str, symbol: str) -> str:
    """The document nginx serves for `GET /api/v1/quotes?symbol=<symbol in any case>`."""
    if not _KEY_PART.fullmatch(symbol):
        raise ValueError("cache key parts must be normalised symbols")
    return f"{namespace}:edge:{EDGE_VERSION}:{symbol}"


def edge_epoch_key(namespace: str) -> str:
    """The epoch: a new one each time a newly fetched quote is cached (EdgeDocuments)."""
    return f"{namespace}:edge:{EDGE_VERSION}:epoch"


def edge_lists_key(namespace: str) -> str:
    """The register of the list documents written since the last new epoch (EdgeDocuments)."""
    return f"{namespace}:edge:{EDGE_VERSION}:lists"


# A list's name is the list itself while its key stays within memcached's 250 bytes whatever the
# namespace (at most 53 characters: CACHE_NAMESPACE's 32, a colon, a currency's 20): nginx then
# builds the key with no code at all (deploy/nginx.conf). A longer list is named by its SHA-256
# (deploy/coinquote-edge.js).
LIST_NAME_MAX = 180


def edge_list_name(symbols: Sequence[str]) -> str:
    """The name of one normalised symbol list: `BTC,ETH`, or `sha256-<hex>` past LIST_NAME_MAX
    characters (nginx names it the same way, deploy/nginx.conf and coinquote-edge.js)."""
    joined = ",".join(symbols)
    if len(joined) <= LIST_NAME_MAX:
        return joined
    return "sha256-" + hashlib.sha256(joined.encode()).hexdigest()


def edge_list_key(namespace: str, name: str) -> str:
    """The document nginx serves for the list named `name` (edge_list_name)."""
    return f"{namespace}:edge:{EDGE_VERSION}:list:{name}"
