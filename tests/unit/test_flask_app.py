"""CoinquoteFlask remembers which functions are coroutines, and treats coroutines as Flask does."""

from __future__ import annotations

import functools

import pytest
from flask import Flask

from src.entrypoints.flask_app import CoinquoteFlask


def plain() -> str:
    return "plain"


async def coroutine() -> str:
    return "coroutine"


class View:
    def get(self) -> str:
        return "method"


def test_plain_functions_and_methods_are_returned_as_they_are_and_remembered():
    app = CoinquoteFlask("t")
    method = View().get

    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(method) is method
    assert app._coroutines == {plain: False, View.get: False}


def test_a_coroutine_is_still_handed_to_async_to_sync_every_time():
    app, flask = CoinquoteFlask("t"), Flask("t")

    for _ in range(2):
        try:
            wrapped = app.ensure_sync(coroutine)
        except RuntimeError as exc:  # asgiref missing: Flask says the same
            with pytest.raises(RuntimeError, match=str(exc)[:30]):
                flask.ensure_sync(coroutine)
        else:
            assert wrapped() == "coroutine"


def test_other_callables_are_not_remembered():
    app = CoinquoteFlask("t")
    partial = functools.partial(plain)

    assert app.ensure_sync(partial) is partial
    assert app._coroutines == {}
