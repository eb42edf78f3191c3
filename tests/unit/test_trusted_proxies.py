"""Forwarded headers count only from trusted proxies (TRUSTED_PROXIES); the compose network is one."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from werkzeug.test import Client

from src.entrypoints.proxies import TrustedProxyFix
from src.entrypoints.settings import DEFAULT_TRUSTED_PROXIES

ROOT = Path(__file__).resolve().parents[2]
FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "quotes.example", "X-Forwarded-Prefix": "/evil"}


def seen_by_the_app(peer: str, trusted=DEFAULT_TRUSTED_PROXIES) -> dict[str, str]:
    seen = {}

    def app(environ, start_response):
        seen.update(addr=environ["REMOTE_ADDR"], scheme=environ["wsgi.url_scheme"],
                    host=environ["HTTP_HOST"], prefix=environ.get("SCRIPT_NAME", ""))
        start_response("200 OK", [])
        return [b""]

    middleware = TrustedProxyFix(app, trusted, x_for=1, x_proto=1, x_host=1, x_prefix=1)
    Client(middleware).get("/", headers=FORWARDED, environ_base={"REMOTE_ADDR": peer})
    return seen


@pytest.mark.parametrize("peer", ["198.51.100.7", "10.0.0.5", "", "not-an-address"])
def test_a_direct_client_cannot_pick_its_address_scheme_host_or_prefix(peer):
    seen = seen_by_the_app(peer)

    assert seen == {"addr": peer, "scheme": "http", "host": "localhost", "prefix": ""}


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_a_proxy_on_loopback_is_trusted_by_default(peer):
    seen = seen_by_the_app(peer)

    assert seen == {"addr": "203.0.113.9", "scheme": "https", "host": "quotes.example",
                    "prefix": "/evil"}


def test_a_configured_network_is_trusted_and_loopback_then_is_not():
    trusted = ("172.31.253.0/24",)

    assert seen_by_the_app("172.31.253.4", trusted)["addr"] == "203.0.113.9"
    assert seen_by_the_app("127.0.0.1", trusted)["addr"] == "127.0.0.1"


def test_compose_trusts_the_network_its_nginx_runs_on():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    trusted = compose["x-api"]["environment"]["TRUSTED_PROXIES"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]

    assert trusted == "${TRUSTED_PROXIES:-%s}" % subnet
    assert ipaddress.ip_network(subnet).is_private


def gunicorn_forwarded_allow_ips(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "--print-config", "wsgi:app"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "CMC_API_KEY": "check-config-only", **env},
    )
    assert result.returncode == 0, result.stderr
    return re.search(r"^forwarded_allow_ips\s+=\s+(.*)$", result.stdout, re.M).group(1)


def test_gunicorn_trusts_the_same_proxies_as_the_app_and_ignores_a_wildcard():
    assert gunicorn_forwarded_allow_ips(FORWARDED_ALLOW_IPS="*") == str(list(DEFAULT_TRUSTED_PROXIES))
    assert gunicorn_forwarded_allow_ips(TRUSTED_PROXIES="10.1.0.0/16,::1") == "['10.1.0.0/16', '::1']"
