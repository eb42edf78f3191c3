"""Flask-Caching backend on pymemcache: sharded servers, text-only values, claims by CAS."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import mmh3
from flask_caching.backends.memcache import MemcachedCache
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import MemcacheError

from src.adapters.cache.rejects import reject_value
from src.adapters.metrics import CACHE_ERRORS

logger = logging.getLogger(__name__)

TEXT_FLAG = 0
_EXPIRE_NOW = -1  # memcached expires an item stored with a negative exptime at once


def _murmur3(key: str, seed: int = 0) -> int:
    return mmh3.hash(key, seed, signed=False)


class MurmurRendezvousHash(RendezvousHash):
    """pymemcache's rendezvous hashing with the C murmur3 of `mmh3`: the same placement as
    pymemcache's pure-Python murmur3 (same values), about 80 times cheaper per key."""

    def __init__(self, nodes=None, seed=0, hash_function=_murmur3) -> None:
        super().__init__(nodes, seed, hash_function)


class TextSerde:
    """Stores str as UTF-8 with flag 0 and reads back only that: never unpickles anything.

    memcached has no authentication, so anyone who can reach it can write a pickle (flag 1)
    under our keys; pymemcache's pickle_serde would run it. Here any other flag, and bytes
    that are not UTF-8, read as a miss (None), counted and logged.
    """

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        if isinstance(value, str):
            return value.encode(), TEXT_FLAG
        raise TypeError(f"only text is cached, not {type(value).__name__}")

    def deserialize(self, key: Any, value: bytes, flags: int) -> str | None:
        if flags != TEXT_FLAG:
            reject_value(f"memcached flags {flags}")
            return None
        try:
            return value.decode()
        except UnicodeDecodeError:
            reject_value("not UTF-8")
            return None


class ObservedHashClient(HashClient):
    """HashClient that counts server failures, logs an outage at most once a minute, and keeps
    its list of failed and dead servers consistent under threads (gunicorn's gthread workers).

    HashClient updates that bookkeeping without a lock: two threads seeing the same server fail
    both remove it, and the second's KeyError escapes from a plain `get_many` (seen with 16
    threads). Its private hooks (pymemcache 4.x, pinned <5 in setup.cfg) are the only way in.
    """

    log_interval = 60.0

    def __init__(self, *args, **kwargs) -> None:
        self._state_lock = threading.RLock()  # add_server runs in HashClient.__init__
        self._last_logged: dict[object, float] = {}
        super().__init__(*args, **kwargs)

    def add_server(self, server, port=None) -> None:
        with self._state_lock:
            super().add_server(server, port)

    def remove_server(self, server, port=None) -> None:
        with self._state_lock:
            key = server if port is None else (server, port)
            if key in self._dead_clients:
                return  # another thread removed it already
            self._failed_clients.setdefault(key, {})  # HashClient pops it unconditionally
            super().remove_server(server, port)

    def _retry_dead(self) -> None:
        with self._state_lock:
            super()._retry_dead()

    def _mark_failed_server(self, server) -> None:
        CACHE_ERRORS.labels("memcached").inc()
        with self._state_lock:
            now = time.monotonic()
            if now - self._last_logged.get(server, -self.log_interval) >= self.log_interval:
                self._last_logged[server] = now
                logger.warning("memcached %s is failing; requests go on without it",
                               server_name(server))
            if server in self._dead_clients:
                return  # removed by another thread meanwhile
            super()._mark_failed_server(server)


def server_name(server: Any) -> str:
    return ":".join(str(part) for part in server) if isinstance(server, tuple) else str(server)


def host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


_MAX_RELATIVE_TTL = 30 * 86_400  # memcached reads a larger exptime as a Unix time


def _relative_ttl(seconds: float) -> int:
    # Relative seconds (memcached reads values up to 30 days so): no dependence on clock skew.
    return min(_MAX_RELATIVE_TTL, max(1, math.ceil(seconds)))


class PymemcacheCache(MemcachedCache):
    """Flask-Caching backend on a pymemcache HashClient (Flask-Caching ships none for pymemcache).

    Several servers are sharded by rendezvous hashing. Errors on reads become misses and a dead
    server is skipped for `dead_timeout` seconds, so an outage costs short timeouts, not failures.
    Values are text only (TextSerde). Beyond Flask-Caching's API it offers what claims need:
    `add_many`, `swap_many` (compare-and-swap through gets/cas) and `server_errors`.
    """

    def __init__(self, client: HashClient, servers: Iterable[str] = (), *,
                 connect_timeout: float = 0.25, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.client = client
        self.servers = tuple(servers)
        self.connect_timeout = connect_timeout

    def _normalize_timeout(self, timeout: Any) -> int:
        # cachelib sends memcached an absolute Unix time (its own clock + timeout): with the
        # memcached host's clock ahead by more than a TTL, every entry would expire at once.
        if timeout is None:
            timeout = self.default_timeout
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        return _relative_ttl(timeout) if timeout > 0 else 0  # 0: never expires

    @classmethod
    def for_servers(cls, servers: Sequence[str], *, default_timeout: int = 300,
                    key_prefix: str = "", connect_timeout: float = 0.25, timeout: float = 0.25,
                    dead_timeout: float = 10) -> PymemcacheCache:
        """The backend over memcached `servers` ("host:port"), as coinquote runs it."""
        client = ObservedHashClient(
            [host_port(server) for server in servers],
            hasher=MurmurRendezvousHash,
            serde=TextSerde(),
            connect_timeout=connect_timeout,
            timeout=timeout,
            ignore_exc=True,
            default_noreply=False,  # with noreply, writes always "succeed" and has() lies
            use_pooling=True,  # the plain client is not thread-safe
            retry_attempts=1,
            retry_timeout=0.5,
            dead_timeout=dead_timeout,
        )
        return cls(client, servers, connect_timeout=connect_timeout,
                   default_timeout=default_timeout, key_prefix=key_prefix)

    @classmethod
    def factory(cls, app, config, args, kwargs):  # Flask-Caching calls it with these four
        return cls.for_servers(
            config["CACHE_MEMCACHED_SERVERS"], default_timeout=kwargs.get("default_timeout", 300),
            key_prefix=config["CACHE_KEY_PREFIX"],
            connect_timeout=config.get("CACHE_MEMCACHED_CONNECT_TIMEOUT", 0.25),
            timeout=config.get("CACHE_MEMCACHED_TIMEOUT", 0.25),
            dead_timeout=config.get("CACHE_MEMCACHED_DEAD_TIMEOUT", 10))

    def add_many(self, mapping: Mapping[str, str], timeout: float) -> list[str]:
        """`add` each key (stored only where absent); returns the keys this call stored."""
        expire = _relative_ttl(timeout)
        # One round trip per key: memcached's text protocol has no multi-key add.
        return [key for key, value in mapping.items()
                if self.client.add(self._normalize_key(key), value, expire, noreply=False)]

    def swap_many(self, changes: Mapping[str, tuple[str, str | None]], timeout: float) -> list[str]:
        """For each key holding exactly `expected`, store `new` (None: delete) atomically.

        `gets` then `cas`: a key that changed in between (another owner's claim) is left alone.
        Returns the keys changed.
        """
        names = {self._normalize_key(key): key for key in changes}
        held = self.client.gets_many(list(names))
        expire = _relative_ttl(timeout)
        swapped = []
        for name, (value, token) in held.items():
            expected, new = changes[names[name]]
            if value != expected:
                continue
            if new is None:  # no delete-if-cas in the text protocol: expire it now instead
                ok = self.client.cas(name, "", token, _EXPIRE_NOW, noreply=False)
            else:
                ok = self.client.cas(name, new, token, expire, noreply=False)
            if ok:
                swapped.append(names[name])
        return swapped

    def server_errors(self) -> dict[str, str]:
        """Each configured server that does not answer a write now: host:port → why."""
        errors = {}
        for server in self.servers:
            client = Client(host_port(server), connect_timeout=self.connect_timeout,
                            timeout=self.connect_timeout, serde=TextSerde())
            try:
                if not client.set(self._normalize_key("ping"), "1", 5, noreply=False):
                    errors[server] = "write refused"
            except (MemcacheError, OSError) as exc:
                errors[server] = f"unreachable ({type(exc).__name__})"
            finally:
                client.close()
        return errors
