"""Forwarded headers (X-Forwarded-*) honoured only from trusted proxies (TRUSTED_PROXIES)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix


class TrustedProxyFix:
    """ProxyFix for requests whose peer (REMOTE_ADDR) is a trusted proxy; others pass untouched.

    A client that reaches the server directly could otherwise pick its own address (a fresh
    rate-limit bucket per request), scheme, host and path prefix.
    """

    def __init__(self, app: Any, trusted: Iterable[str], **proxy_fix_options: int) -> None:
        self.app = app
        self.networks = tuple(ipaddress.ip_network(network) for network in trusted)
        self.fixed = ProxyFix(app, **proxy_fix_options)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self.is_trusted(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)

    def is_trusted(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:  # no address (a UNIX socket) or junk: not a proxy we know
            return False
        if address.version == 6 and address.ipv4_mapped:  # ::ffff:127.0.0.1 on a dual-stack bind
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
