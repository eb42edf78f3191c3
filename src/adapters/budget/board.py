"""Where the credit governor keeps its counts: a Board, over a `limits` storage (memcached for
every process and replica, or in-process memory) or the database (src/adapters/sql/budget_board.py).

A board has atomic counters that expire (memcached's incr/decr semantics: a counter never goes
below zero) and small text notes. Values written by someone else (memcached has no
authentication) are read as absent, never trusted as code or figures of the wrong type.
"""

from __future__ import annotations

import abc
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from limits.storage import MemcachedStorage, MemoryStorage, Storage
from pymemcache.exceptions import MemcacheClientError

# memcached reads an expiry above 30 days as an absolute Unix time: stay below it.
MAX_TTL_SECONDS = 29 * 86_400
_IN_PROCESS_NOTES: weakref.WeakKeyDictionary[Storage, dict[str, tuple[str, float]]] = \
    weakref.WeakKeyDictionary()
_IN_PROCESS_LOCK = threading.Lock()


class Board(abc.ABC):
    """Counters and notes shared by the processes that use the same board."""

    #: Whether other processes see this board (else it is this process's memory).
    shared = True

    @abc.abstractmethod
    def add(self, key: str, amount: int, ttl: float) -> int:
        """Add `amount` to the counter (created for `ttl` seconds when absent); its new value."""

    @abc.abstractmethod
    def give_back(self, key: str, amount: int) -> None:
        """Take `amount` off the counter (never below zero; an absent counter stays absent)."""

    @abc.abstractmethod
    def raise_to(self, key: str, target: int, ttl: float) -> None:
        """Make the counter at least `target`, atomically: any number of processes raising it
        to the same figure leave it at that figure."""

    @abc.abstractmethod
    def counts(self, keys: Sequence[str]) -> list[int]:
        """The counters' values (0 when absent or junk)."""

    @abc.abstractmethod
    def notes(self, keys: Sequence[str]) -> list[str | None]:
        """The notes' texts (None when absent or not text)."""

    @abc.abstractmethod
    def write_note(self, key: str, value: str, ttl: float) -> None:
        """Write a note for `ttl` seconds (bounded to what memcached takes as a duration)."""


def build_board(memcached_servers: Sequence[str]) -> LimitsBoard:
    """memcached (every process and replica) when servers are given, else this process."""
    if memcached_servers:
        # Short timeouts: a slow memcached must not hold a request; the governor then counts
        # in-process for a while.
        return LimitsBoard(MemcachedStorage("memcached://" + ",".join(memcached_servers),
                                            connect_timeout=0.5, timeout=0.5))  # type: ignore[arg-type]
    return LimitsBoard(MemoryStorage())


class LimitsBoard(Board):
    """A board over a `limits` storage: its atomic incr with expiry, and small notes."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.shared = not isinstance(storage, MemoryStorage)
        with _IN_PROCESS_LOCK:
            # Notes live beside their storage, so governors sharing one storage share them.
            self._notes = _IN_PROCESS_NOTES.setdefault(storage, {})
        self._lock = _IN_PROCESS_LOCK

    @property
    def _client(self) -> Any | None:
        # MemcachedStorage's public `storage` property is its (thread-local) pymemcache client:
        # limits has no decrement or plain set, which giving back and notes need.
        return self.storage.storage if isinstance(self.storage, MemcachedStorage) else None

    def add(self, key: str, amount: int, ttl: float) -> int:
        if isinstance(self.storage, MemcachedStorage):
            for _ in range(3):
                try:
                    # No expiry side key: nothing here reads it; it would cost a write per key.
                    return self.storage.incr(key, int(ttl), amount=amount,
                                             set_expiration_key=False)
                except MemcacheClientError:
                    # A value that is not a counter (memcached has no authentication): it
                    # counts as absent and is replaced, else every process counts for itself.
                    if self._replace_junk(key, amount, ttl):
                        return amount
            raise MemcacheClientError(f"{key} stays unusable as a counter")
        return self.storage.incr(key, int(ttl), amount=amount)

    def _replace_junk(self, key: str, amount: int, ttl: float) -> bool:
        """Put `amount` in place of a junk value, unless another process changed it first."""
        client = self._client
        value, token = client.gets(key)  # type: ignore[union-attr]
        if value is None or count_of(value) is not None:
            return False  # gone or a counter again meanwhile: increment it
        return bool(client.cas(key, str(amount), token, expire=int(ttl), noreply=False))  # type: ignore[union-attr]

    def give_back(self, key: str, amount: int) -> None:
        if amount <= 0:
            return
        if (client := self._client) is not None:
            try:
                client.decr(key, amount, noreply=False)
            except MemcacheClientError:
                pass  # junk in place of the counter: nothing to give back, the next add resets it
        else:
            self.storage.decr(key, amount)  # type: ignore[attr-defined]

    def raise_to(self, key: str, target: int, ttl: float) -> None:
        if (client := self._client) is None:
            with self._lock:
                current = self.storage.get(key)
                if current < target:
                    self.storage.incr(key, int(ttl), amount=target - current)
            return
        for _ in range(10):
            value, token = client.gets(key)
            if value is None:
                if client.add(key, str(target), expire=int(ttl), noreply=False):
                    return
                continue  # another process created it meanwhile: compare with theirs
            if (count_of(value) or 0) >= target:
                return
            if client.cas(key, str(target), token, expire=int(ttl), noreply=False):
                return
        raise MemcacheClientError(f"{key} kept changing while raised")

    def counts(self, keys: Sequence[str]) -> list[int]:
        if (client := self._client) is not None:
            found = client.get_many(list(keys))
            return [count_of(found.get(key)) or 0 for key in keys]
        return [self.storage.get(key) for key in keys]

    def notes(self, keys: Sequence[str]) -> list[str | None]:
        if (client := self._client) is not None:
            found = client.get_many(list(keys))
            return [_text(found.get(key)) for key in keys]
        now = time.time()
        with self._lock:
            return [value if (entry := self._notes.get(key)) and (value := entry[0]) and
                    entry[1] > now else None for key in keys]

    def write_note(self, key: str, value: str, ttl: float) -> None:
        ttl = int(min(max(ttl, 1), MAX_TTL_SECONDS))
        if (client := self._client) is not None:
            client.set(key, value, expire=ttl, noreply=False)
        else:
            with self._lock:
                self._notes[key] = (value, time.time() + ttl)


def count_of(value: bytes | None) -> int | None:
    """A memcached counter's value (decimal digits, maybe space-padded), or None for junk."""
    try:
        count = int(value) if value is not None else None
    except ValueError:
        return None
    # memcached counters are unsigned 64-bit: anything else it refuses to increment.
    return count if count is not None and 0 <= count < 2**64 else None


def _text(value: bytes | None) -> str | None:
    try:
        return value.decode() if value is not None else None
    except UnicodeDecodeError:
        return None  # not a note of ours
