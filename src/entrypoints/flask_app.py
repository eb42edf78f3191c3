"""The Flask class coinquote runs on: Flask's own, minus a per-request introspection cost."""

from __future__ import annotations

import inspect
import threading
import types
from collections.abc import Callable
from typing import Any

from flask import Flask

_MAX_REMEMBERED = 1_024


class CoinquoteFlask(Flask):
    """Flask that remembers which of its functions are coroutines.

    Flask asks `inspect.iscoroutinefunction` of every hook and view on every request (19 times
    for a quotes request): about 5 % of a cache hit's CPU, found by profiling. Whether a function
    is a coroutine never changes, so the answer is remembered per plain function (bounded);
    anything else (partials, callables) is asked every time as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._coroutines: dict[types.FunctionType, bool] = {}
        self._coroutines_lock = threading.Lock()

    def ensure_sync(self, func: Callable) -> Callable:
        plain = getattr(func, "__func__", func)  # a bound method's function
        if type(plain) is not types.FunctionType:
            return super().ensure_sync(func)
        is_coroutine = self._coroutines.get(plain)
        if is_coroutine is None:
            is_coroutine = inspect.iscoroutinefunction(func)
            with self._coroutines_lock:
                if len(self._coroutines) >= _MAX_REMEMBERED:
                    self._coroutines.clear()
                self._coroutines[plain] = is_coroutine
        return self.async_to_sync(func) if is_coroutine else func
