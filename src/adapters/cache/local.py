"""A thread-safe in-process Flask-Caching backend: bounded LRU partitions under one lock."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from flask_caching.backends.base import BaseCache

from src.adapters.cache.values import LOCAL_LIMITS, partition_of

_Entry = tuple[float, Any]  # (expiry on the monotonic clock, 0 = never; value)


def one_partition(key: str, value: Any) -> str:
    return "main"


def _seconds(timeout: Any) -> float:
    if isinstance(timeout, dt.timedelta):
        return timeout.total_seconds()
    return float(timeout)


class LocalCache(BaseCache):
    """The cache of one process, safe under gunicorn's threads (`make run`: gthread, 4 threads).

    Every operation holds one lock, so nothing iterates while another thread writes and `add`
    is atomic (one winner per claim). Entries fall into partitions chosen by `classify`, each
    its own LRU with its own limit: entries of one kind (negative entries for junk symbols)
    never evict those of another (real quotes). Eviction is O(1): the least recently used goes.
    Beyond Flask-Caching's API it offers what claims need: `add_many`, `swap_many`,
    `server_errors` (the same as PymemcacheCache).
    """

    def __init__(self, default_timeout: int = 300, *,
                 limits: Mapping[str, int] | None = None,
                 classify: Callable[[str, Any], str] = one_partition,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(default_timeout=default_timeout)
        self._limits = dict(limits or {"main": 5_000})
        self._classify = classify
        self._clock = clock
        self._parts: dict[str, OrderedDict[str, _Entry]] = {p: OrderedDict() for p in self._limits}
        self._lock = threading.Lock()

    @classmethod
    def in_process(cls, default_timeout: int = 300) -> LocalCache:
        """The backend coinquote runs on without memcached: quotes partitioned from the rest."""
        return cls(default_timeout, limits=LOCAL_LIMITS, classify=partition_of)

    @classmethod
    def factory(cls, app, config, args, kwargs):  # Flask-Caching calls it with these four
        return cls.in_process(kwargs.get("default_timeout", 300))

    # --- helpers; the caller holds the lock -------------------------------------------------

    def _expiry(self, timeout: Any) -> float:
        seconds = self.default_timeout if timeout is None else _seconds(timeout)
        return 0.0 if seconds == 0 else self._clock() + seconds  # 0: never; below: already gone

    def _find(self, key: str) -> tuple[OrderedDict[str, _Entry], _Entry] | None:
        for part in self._parts.values():
            entry = part.get(key)
            if entry is not None:
                if entry[0] and entry[0] <= self._clock():
                    del part[key]
                    return None
                return part, entry
        return None

    def _put(self, key: str, value: Any, expires: float) -> None:
        self._remove(key)
        name = self._classify(key, value)
        part = self._parts[name]
        part[key] = (expires, value)
        while len(part) > self._limits[name]:
            part.popitem(last=False)

    def _remove(self, key: str) -> bool:
        return any(part.pop(key, None) is not None for part in self._parts.values())

    # --- Flask-Caching's API ---------------------------------------------------------------

    def get(self, key: str) -> Any:
        with self._lock:
            found = self._find(key)
            if found is None:
                return None
            part, (_, value) = found
            part.move_to_end(key)
            return value

    def get_many(self, *keys: str) -> list[Any]:
        with self._lock:
            values = []
            for key in keys:
                found = self._find(key)
                if found is not None:
                    found[0].move_to_end(key)
                values.append(None if found is None else found[1][1])
            return values

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def has(self, key: str) -> bool:
        with self._lock:
            return self._find(key) is not None

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        with self._lock:
            self._put(key, value, self._expiry(timeout))
        return True

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None) -> list[Any]:
        with self._lock:
            expires = self._expiry(timeout)
            for key, value in mapping.items():
                self._put(key, value, expires)
        return list(mapping)

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        with self._lock:
            if self._find(key) is not None:
                return False
            self._put(key, value, self._expiry(timeout))
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._remove(key)

    def delete_many(self, *keys: str) -> list[Any]:
        with self._lock:
            for key in keys:
                self._remove(key)
        return list(keys)

    def clear(self) -> bool:
        with self._lock:
            for part in self._parts.values():
                part.clear()
        return True

    # --- claims ----------------------------------------------------------------------------

    def add_many(self, mapping: Mapping[str, Any], timeout: float) -> list[str]:
        """`add` each key (stored only where absent); returns the keys this call stored."""
        with self._lock:
            expires = self._clock() + max(1, math.ceil(_seconds(timeout)))
            added = []
            for key, value in mapping.items():
                if self._find(key) is None:
                    self._put(key, value, expires)
                    added.append(key)
            return added

    def swap_many(self, changes: Mapping[str, tuple[Any, Any | None]], timeout: float) -> list[str]:
        """For each key holding exactly `expected`, store `new` (None: delete) atomically."""
        with self._lock:
            expires = self._clock() + max(1, math.ceil(_seconds(timeout)))
            swapped = []
            for key, (expected, new) in changes.items():
                found = self._find(key)
                if found is None or found[1][1] != expected:
                    continue
                if new is None:
                    self._remove(key)
                else:
                    self._put(key, new, expires)
                swapped.append(key)
            return swapped

    def server_errors(self) -> dict[str, str]:
        """Nothing to reach: always {}."""
        return {}
