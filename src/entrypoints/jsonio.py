"""JSON output that writes Decimals as exact JSON numbers (the standard library cannot)."""

from __future__ import annotations

from typing import Any

import simplejson
from flask.json.provider import DefaultJSONProvider


class ExactJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, but Decimal -> number with every digit, and keys kept in order."""

    sort_keys = False  # data is keyed in request order; sorting would lose it

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return simplejson.dumps(obj, use_decimal=True, **kwargs)
