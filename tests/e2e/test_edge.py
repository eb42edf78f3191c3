"""The nginx fast path (README "Deploy"): real nginx answering a cached coin from two memcached servers
while every gunicorn is stopped; everything else, and a miss, still goes to the app."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pymemcache.client.base import Client

from tests.e2e.conftest import (
    Process,
    migrate,
    new_database,
    service_env,
    spawn,
    start_gunicorn,
    start_nginx,
)
from tests.servers import Memcached, eventually, free_port, stop

TTL = 6  # CACHE_TTL_SECONDS of this stack: long enough for the checks, short enough to wait out
EDGE_KEY = "coinquote:USD:edge:v2:BTC"  # CACHE_NAMESPACE:BASE_CURRENCY, defaults


@dataclass
class EdgeStack:
    """Its own gunicorn (restartable on the same port), two memcached servers and nginx."""

    env: dict[str, str]
    port: int
    log: Path
    memcached: list[Memcached]
    nginx: Process
    gunicorn: Process | None = None

    def start_app(self) -> None:
        env = {**self.env, "GUNICORN_BIND": f"127.0.0.1:{self.port}", "GUNICORN_WORKERS": "2"}
        self.gunicorn = spawn([sys.executable, "-m", "gunicorn", "wsgi:app"], env, self.port,
                              self.log)

    def stop_app(self) -> None:
        if self.gunicorn is not None:
            stop(self.gunicorn.process, signal.SIGQUIT)  # quick shutdown: workers too
            self.gunicorn = None

    def restart_all(self) -> None:
        """Every memcached server up (an earlier test may have stopped one), and a fresh app."""
        self.stop_app()
        for server in self.memcached:
            if server.process is None or server.process.poll() is not None:
                server.start()
        self.start_app()

    def edge_documents(self) -> list[bytes | None]:
        found = []
        for server in self.memcached:
            client = Client(("127.0.0.1", server.port), connect_timeout=1, timeout=1)
            found.append(client.get(EDGE_KEY))
            client.close()
        return found

    def logged(self, **fields: object) -> bool:
        """Whether nginx's JSON access log has a line with all of `fields` (it may lag)."""
        path = self.nginx.extra["access_log"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = path.read_text().splitlines() if path.exists() else []
            entries = [json.loads(line) for line in lines]  # every line is one JSON object
            if any(fields.items() <= entry.items() for entry in entries):
                return True
            time.sleep(0.05)
        return False


@pytest.fixture(scope="module")
def edge_database_url(database_url) -> str:
    """A database of its own: what this stack fetches must not be found by the session's."""
    return new_database(database_url, "coinquote_edge")


@pytest.fixture(scope="module")
def edge(e2e_dir, fake_cmc_process, edge_database_url) -> Iterator[EdgeStack]:
    servers = [Memcached().start(), Memcached().start()]
    env = service_env(fake_cmc_process.url, edge_database_url, [s.address for s in servers])
    env["CACHE_TTL_SECONDS"] = str(TTL)
    migrated = migrate(env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    proxy = start_nginx([f"127.0.0.1:{port}"], e2e_dir / "edge-nginx",
                        memcached=[s.address for s in servers])
    stack = EdgeStack(env, port, e2e_dir / "edge-gunicorn.log", servers, proxy)
    stack.start_app()
    yield stack
    stack.stop_app()
    stop(proxy.process, signal.SIGQUIT)
    for server in servers:
        server.close()


def test_a_cached_coin_is_served_by_nginx_alone_while_every_gunicorn_is_stopped(edge):
    for _ in range(4):  # warm both workers (first connections, first call), so timing is tight
        requests.get(f"http://127.0.0.1:{edge.port}/api/v1/quotes?symbol=SOL", timeout=10)
    asked_at = time.monotonic()
    first = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=BTC", timeout=10)
    assert first.status_code == 200
    cached_at = time.monotonic()  # the entry was written before this, and after `asked_at`
    from_cache = requests.get(f"http://127.0.0.1:{edge.port}/api/v1/quotes?symbol=btc", timeout=10)
    assert from_cache.json()["data"]["BTC"]["source"] == "cache"
    # The app's own answer promises no more than what remains of the entry (TTL s from `first`).
    promised = int(from_cache.headers["Cache-Control"].removeprefix("public, max-age="))
    assert promised <= TTL - (time.monotonic() - cached_at)
    # The app wrote its answer to EVERY memcached server: nginx may ask either.
    assert edge.edge_documents() == [from_cache.content, from_cache.content]

    edge.stop_app()
    for query in ("symbol=btc", "symbol=BtC", "symbol=BTC"):
        served = requests.get(edge.nginx.url + "/api/v1/quotes?" + query, timeout=5)
        assert served.status_code == 200, query
        assert served.content == from_cache.content
        assert served.headers["Content-Type"] == "application/json"
        assert served.headers["Cache-Control"] == "public, max-age=0"
        assert served.headers["X-Request-ID"]
        # nginx gzips it for clients that accept it (requests does), and says so.
        assert served.headers["Content-Encoding"] == "gzip"
        assert served.headers["Vary"] == "Accept-Encoding"
    given = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=btc", timeout=5,
                         headers={"X-Request-ID": "edge-rid-1"})
    assert given.headers["X-Request-ID"] == "edge-rid-1"
    head = requests.head(edge.nginx.url + "/api/v1/quotes?symbol=btc", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert edge.logged(served_by="edge", request_id="edge-rid-1", status=200,
                       uri="/api/v1/quotes?symbol=btc")

    # Anything else needs the app, which is gone: nginx's own JSON 502, as before.
    for query in ("symbol=ETH", "symbol=btc&convert=EUR", "symbol=BTC,ETH", "symbol=BTC%2CETH",
                  "symbol=btc&symbol=eth", "symbol=" + "B" * 21, "symbol=", "symbol=%20btc",
                  "Symbol=btc", "symbol=btc&", "symbol=btc%00", "&symbol=btc"):
        failed = requests.get(edge.nginx.url + "/api/v1/quotes?" + query, timeout=5)
        assert failed.status_code == 502, query
        assert failed.json()["code"] == 502
        assert failed.headers["Cache-Control"] == "no-store"
    for method in ("POST", "OPTIONS"):  # GET and HEAD only
        failed = requests.request(method, edge.nginx.url + "/api/v1/quotes?symbol=btc", timeout=5)
        assert failed.status_code == 502, method

    # One memcached server gone: the other still answers every fast-path request.
    edge.memcached[0].stop()
    for _ in range(4):
        served = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=btc", timeout=5)
        assert served.status_code == 200 and served.content == from_cache.content
    assert time.monotonic() - asked_at < TTL, "the checks outlived the entry: raise TTL"

    # After the entry's lifetime the fast path misses and only the app can answer.
    time.sleep(max(0.0, cached_at + TTL + 1.5 - time.monotonic()))
    assert requests.get(edge.nginx.url + "/api/v1/quotes?symbol=btc", timeout=5).status_code == 502
    edge.start_app()
    again = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=btc", timeout=10,
                         headers={"X-Request-ID": "edge-rid-2"})
    assert again.status_code == 200
    assert again.json()["data"]["BTC"]["source"] in {"database", "provider"}
    assert edge.logged(served_by="app", request_id="edge-rid-2", status=200)


def test_nginx_limits_each_client_in_the_apis_json_and_exposes_its_counters(e2e_dir, edge):
    """The fast path never reaches the app's RATE_LIMIT: nginx's limit_req stands in for it."""
    tight = start_nginx(
        [f"127.0.0.1:{edge.port}"], e2e_dir / "edge-nginx-tight",
        edit=lambda text: text.replace("rate=50r/s", "rate=1r/m").replace("burst=100", "burst=2"),
        memcached=[s.address for s in edge.memcached])
    try:
        answers = [requests.get(tight.url + "/api/v1/quotes?symbol=btc", timeout=10)
                   for _ in range(5)]
        status = requests.get(tight.url + "/nginx_status", timeout=5)
    finally:
        stop(tight.process, signal.SIGQUIT)

    refused = answers[3:]  # one at the rate, two in the burst
    assert [r.status_code for r in refused] == [429, 429]
    for response in refused:
        assert response.json()["code"] == 429
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Retry-After"]
        assert response.headers["X-Request-ID"]
    assert status.status_code == 200 and status.text.startswith("Active connections:")


def test_requests_outside_the_fast_path_are_logged_without_a_warning_each(edge):
    """`served_by` is set for every request: an unset one cost an error-log warning per request."""
    requests.get(edge.nginx.url + "/openapi.json", timeout=10)

    assert edge.logged(uri="/openapi.json", served_by="")
    assert "uninitialized" not in edge.nginx.extra["error_log"].read_text()


def test_a_list_asked_twice_is_served_by_nginx_alone_until_its_quotes_expire(edge):
    """Issue 18, acceptance 1 and 2: byte-identical, every spelling of the list, nothing more."""
    edge.restart_all()
    symbols = [f"SYN{n}" for n in range(31_001, 31_011)]  # ten coins no other test asks for
    url = edge.nginx.url + "/api/v1/quotes?symbol=" + ",".join(symbols)
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    assert {c["source"] for c in fetched.json()["data"].values()} == {"provider"}
    cached_at = time.monotonic()  # every entry was written before this

    from_cache = requests.get(url, timeout=10, headers={"X-Request-ID": "list-rid-1"})
    assert from_cache.status_code == 200
    assert {c["source"] for c in from_cache.json()["data"].values()} == {"cache"}
    assert edge.logged(served_by="app", request_id="list-rid-1")
    edge.stop_app()

    assert eventually(lambda: requests.get(url, timeout=5).status_code == 200)
    lower = ",".join(symbols).lower()
    same = [url, edge.nginx.url + "/api/v1/quotes?symbol=" + lower,
            edge.nginx.url + "/api/v1/quotes?symbol=" + ",".join(symbols + symbols[:3]),
            edge.nginx.url + "/api/v1/quotes?symbol=" + lower.replace("syn31001", "Syn31001")]
    for spelling in same:
        served = requests.get(spelling, timeout=5, headers={"X-Request-ID": "list-rid-2"})
        assert served.status_code == 200, spelling
        assert served.content == from_cache.content
        assert served.headers["Content-Type"] == "application/json"
        assert served.headers["X-Request-ID"] == "list-rid-2"
        # Never more than what remains of the entries (TTL s from `cached_at`): nothing at all.
        assert served.headers["Cache-Control"] == "public, max-age=0"
    assert edge.logged(served_by="edge", request_id="list-rid-2", status=200)
    head = requests.head(url, timeout=5)
    assert head.status_code == 200 and head.content == b""

    # Another order is another answer; convert, an unknown symbol or anything but `symbol` are
    # the app's to answer, and the app is gone: nginx's own 502.
    listed = ",".join(symbols)
    for query in (",".join(reversed(symbols)), listed + "&convert=EUR", listed + ",NOPE0",
                  listed + "&x=1", listed.replace(",", "%2C"), listed + ",", symbols[0] + ",,"
                  + symbols[1]):
        refused = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=" + query, timeout=5)
        assert refused.status_code == 502, query
    assert time.monotonic() - cached_at < TTL, "the checks outlived the entries: raise TTL"

    # After the quotes' life the document is gone with them.
    time.sleep(max(0.0, cached_at + TTL + 1.5 - time.monotonic()))
    assert requests.get(url, timeout=5).status_code == 502
    edge.start_app()


def without_njs(text: str) -> str:
    """deploy/nginx.conf with the njs spellings cut off: only nginx's own naming is left."""
    cut = text.replace('"~ $" $coinquote_edge_normalised;', '"~ $" "";')
    assert cut != text, "the key map changed: update this edit"
    return cut


def test_the_spelling_a_dashboard_repeats_is_named_by_nginx_itself(e2e_dir, edge):
    """Issue 18, acceptance 3: capitals and no repeat, the list and the coin are answered by
    nginx's own regular expressions (njs costs a third of the edge's speed). With the njs path cut
    off they are still answered by the edge, and every other spelling by the app."""
    edge.restart_all()
    symbols = [f"SYN{n}" for n in range(31_101, 31_111)]
    listed = ",".join(symbols)
    for _ in range(2):  # fetched, then answered from the cache: its document is written
        asked = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=" + listed, timeout=10)
        assert asked.status_code == 200
    assert {c["source"] for c in asked.json()["data"].values()} == {"cache"}
    single = requests.get(f"http://127.0.0.1:{edge.port}/api/v1/quotes?symbol={symbols[0]}",
                          timeout=10)
    plain = start_nginx([f"127.0.0.1:{edge.port}"], e2e_dir / "edge-nginx-without-njs",
                        edit=without_njs, memcached=[s.address for s in edge.memcached])
    try:
        answers = {}
        for n, query in enumerate((listed, symbols[0], listed.lower(), symbols[0].lower(),
                                   listed + "," + symbols[0])):
            answers[query] = requests.get(plain.url + "/api/v1/quotes?symbol=" + query,
                                          timeout=10, headers={"X-Request-ID": f"plain-{n}"})
            assert answers[query].status_code == 200, query
        assert answers[listed].content == asked.content
        assert answers[symbols[0]].content == single.content
        for n, served_by in enumerate(("edge", "edge", "app", "app", "app")):
            assert eventually_logged(plain, request_id=f"plain-{n}", served_by=served_by), n
    finally:
        stop(plain.process, signal.SIGQUIT)

    # A list too long to name itself (over 180 characters) is named by its SHA-256, in njs.
    long = ",".join(f"SYN{n}" for n in range(31_101, 31_131))  # 30 symbols, 239 characters
    for _ in range(2):
        asked = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=" + long, timeout=10)
    assert {c["source"] for c in asked.json()["data"].values()} == {"cache"}
    served = requests.get(edge.nginx.url + "/api/v1/quotes?symbol=" + long.lower(), timeout=10,
                          headers={"X-Request-ID": "long-list"})
    assert served.content == asked.content
    assert eventually_logged(edge.nginx, request_id="long-list", served_by="edge")


def test_deployments_sharing_memcached_never_serve_each_others_documents(e2e_dir, edge):
    """Issue 21, defect 5: a EUR deployment on the same memcached; the USD nginx must not serve
    its documents, whose own nginx does. Likewise another CACHE_NAMESPACE in the same currency."""
    edge.restart_all()
    eur_env = {**edge.env, "BASE_CURRENCY": "EUR"}
    eur = start_gunicorn(eur_env, e2e_dir / "edge-eur-gunicorn.log", workers=1)
    servers = [s.address for s in edge.memcached]
    eur_nginx = start_nginx([eur.url.removeprefix("http://")], e2e_dir / "edge-eur-nginx",
                            memcached=servers, env={"BASE_CURRENCY": "EUR"})
    other_nginx = start_nginx([eur.url.removeprefix("http://")], e2e_dir / "edge-other-nginx",
                              memcached=servers,
                              env={"BASE_CURRENCY": "EUR", "CACHE_NAMESPACE": "other"})
    edge.stop_app()  # whatever the USD nginx answers now, it answers alone
    try:
        for query in ("symbol=SYN31600", "symbol=SYN31600,SYN31601"):
            requests.get(eur.url + "/api/v1/quotes?" + query, timeout=10)  # fetched
            in_eur = requests.get(eur.url + "/api/v1/quotes?" + query, timeout=10)  # cached
            assert "EUR" in next(iter(in_eur.json()["data"].values()))["quote"]
            via_eur = eur_nginx.url + "/api/v1/quotes?" + query

            assert eventually(lambda: requests.get(via_eur, timeout=5).content
                              == in_eur.content), query
            usd = requests.get(edge.nginx.url + "/api/v1/quotes?" + query, timeout=5)
            assert usd.status_code == 502, query  # a miss, sent to the (stopped) USD app
            other = requests.get(other_nginx.url + "/api/v1/quotes?" + query, timeout=5)
            assert other.status_code == 200, query  # the EUR app answered, not the edge:
            assert eventually_logged(other_nginx, served_by="app", uri="/api/v1/quotes?" + query)
    finally:
        stop(eur_nginx.process, signal.SIGQUIT)
        stop(other_nginx.process, signal.SIGQUIT)
        stop(eur.process)
        edge.start_app()


def eventually_logged(proxy: Process, **fields: object) -> bool:
    return eventually(lambda: any(
        fields.items() <= json.loads(line).items()
        for line in (proxy.extra["access_log"].read_text().splitlines()
                     if proxy.extra["access_log"].exists() else [])))
