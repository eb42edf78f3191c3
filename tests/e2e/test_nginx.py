"""Real nginx (deploy/nginx.conf) in front of two gunicorn instances sharing PostgreSQL and memcached."""

from __future__ import annotations

import gzip
import http.client as http_client
import json
import random
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.browser import local_only_page, screenshot
from tests.e2e.conftest import start_nginx
from tests.servers import eventually, free_port, stop


def served_by(replicas, request_id: str) -> int:
    """Which replica logged `request_id` (the app logs it on its access line)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [i for i, r in enumerate(replicas) if f"rid={request_id}" in r.output()]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no replica logged request {request_id}")


def test_a_quote_fetched_by_one_replica_is_served_from_cache_by_the_other(nginx, replicas, http):
    # Coins no other test has fetched (the e2e database is shared by the session), and two of
    # them, so that nginx's one-symbol fast path leaves these requests to the replicas.
    first, second = (f"SYN{n}" for n in random.sample(range(20_000, 30_000), 2))
    answers = []
    for _ in range(6):
        rid = f"e2e-{uuid.uuid4().hex[:12]}"
        response = http.get(nginx.url + f"/api/v1/quotes?symbol={first},{second}",
                            headers={"X-Request-ID": rid})
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == rid
        answers.append((served_by(replicas, rid), response.json()["data"][first]["source"]))

    first_replica, first_source = answers[0]
    assert first_source == "provider"
    others = [source for replica, source in answers[1:] if replica != first_replica]
    assert others, f"nginx sent every request to one replica: {answers}"
    assert set(source for _, source in answers[1:]) == {"cache"}


def test_nginx_makes_a_request_id_when_the_client_sends_none(nginx, replicas, http):
    response = http.get(nginx.url + "/api/v1/quotes?symbol=BTC")

    rid = response.headers["X-Request-ID"]
    assert len(rid) == 32
    served_by(replicas, rid)  # the same id reached the app and its log
    assert eventually(lambda: f'"request_id":"{rid}"' in nginx.extra["access_log"].read_text())


def test_one_request_id_per_request_even_when_the_clients_is_refused(nginx, replicas, http):
    """Issue 21, defect 9: nginx kept a client's invalid id the app replaced; now one id."""
    evil = "evil id <script>"

    response = http.get(nginx.url + "/api/v1/quotes?symbol=BTC,ETH", headers={"X-Request-ID": evil})
    too_long = http.get(nginx.url + "/api/v1/quotes?symbol=BTC",
                        headers={"X-Request-ID": "a" * 129})

    for answer in (response, too_long):
        rid = answer.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid)  # nginx's own, as the client's was refused
        served_by(replicas, rid)  # the app logged that same id
        assert eventually(lambda: f'"request_id":"{rid}"' in nginx.extra["access_log"].read_text())
    assert "evil" not in nginx.extra["access_log"].read_text()


def raw_get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (requests and urllib3 would resolve `.` and `..` first)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http_client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_one_path_one_answer_however_the_client_spells_it(nginx):
    """Issue 21, defect 4: `//`, `/./` and `/x/../` reached the app as sent (a 308 HTML page)."""
    symbol = f"SYN{random.randint(40_000, 49_999)}"  # not cached: the app answers, not the edge

    for path in (f"/api/v1//quotes?symbol={symbol}", f"/api/v1/./quotes?symbol={symbol}",
                 f"/api/v1/x/../quotes?symbol={symbol}", f"//api/v1/quotes?symbol={symbol}"):
        status, headers, body = raw_get(nginx.url, path)
        assert status == 200, (path, status)
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["data"][symbol]["symbol"] == symbol
    for path in ("//healthz", "/api/v1//quotes/history?symbol=BTC", "/./openapi.json"):
        status, headers, _ = raw_get(nginx.url, path)
        assert status in (200, 404), (path, status)  # the app's answer for that path, no 308
        assert "Location" not in headers


def test_json_is_gzipped_and_healthz_is_not_logged(nginx, http):
    marker = uuid.uuid4().hex
    raw = http.get(nginx.url + "/api/v1/quotes?symbol=BTC,ETH", headers={"Accept-Encoding": "gzip"}, stream=True)
    body = raw.raw.read()
    http.get(nginx.url + "/healthz", headers={"X-Request-ID": marker})

    assert raw.headers["Content-Encoding"] == "gzip"
    assert b'"BTC"' in gzip.decompress(body)
    http.get(nginx.url + "/openapi.json", headers={"X-Request-ID": marker + "-later"})
    assert eventually(lambda: f"{marker}-later" in nginx.extra["access_log"].read_text())
    assert f'"request_id":"{marker}"' not in nginx.extra["access_log"].read_text()


def test_forwarded_headers_reach_the_app(nginx, http):
    spec = http.get(nginx.url + "/coinquote/openapi.json").json()

    assert spec["servers"][0]["url"] == "/coinquote"


def test_docs_work_through_nginx_at_the_root_and_under_a_prefix(nginx):
    with local_only_page() as (page, outside):
        for prefix, name in (("", "nginx-swagger-ui"), ("/coinquote", "nginx-prefix-swagger-ui")):
            page.goto(nginx.url + prefix + "/swagger-ui")
            operation = page.locator('.opblock-summary-path[data-path="/api/v1/quotes"]')
            operation.wait_for(timeout=20000)
            operation.click()
            page.get_by_role("button", name="Try it out").click()
            page.get_by_role("button", name="Execute").click()
            status = page.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=20000)
            request_url = page.locator(".request-url pre").first.inner_text()
            code = status.inner_text().strip()
            screenshot(page, name)
            page.goto("about:blank")
            assert code.startswith("200"), (prefix, code)
            assert request_url.startswith(nginx.url + prefix + "/api/v1/quotes"), request_url
        page.goto(nginx.url + "/coinquote/redoc")
        page.locator("h2", has_text="Get the latest quotes of one or more coins").wait_for(timeout=20000)
        screenshot(page, "nginx-prefix-redoc")

    assert outside == []


def test_metrics_are_reachable_from_inside(nginx, http):
    assert "coinquote_http_requests_total" in http.get(nginx.url + "/metrics").text


def test_a_clients_forwarded_prefix_never_reaches_the_app(nginx, http):
    evil = {"X-Forwarded-Prefix": "/evil"}

    at_root = http.get(nginx.url + "/openapi.json", headers=evil).json()
    under_prefix = http.get(nginx.url + "/coinquote/openapi.json", headers=evil).json()

    assert at_root["servers"][0]["url"] == "/"
    assert under_prefix["servers"][0]["url"] == "/coinquote"


class Backend:
    """A stand-in replica on a free port that counts the requests it gets and answers as told."""

    def __init__(self, status: int = 200, body: bytes = b'{"ok": true}', delay: float = 0.0) -> None:
        self.hits = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                backend.hits += 1
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # nginx gave up waiting and closed the connection
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(tmp_path) -> Iterator:
    """Start nginx (deploy/nginx.conf) in front of the given upstreams; stopped after the test."""
    started = []

    def start(upstreams: list[str], edit=None):
        proc = start_nginx(upstreams, tmp_path / f"nginx-{len(started)}", edit)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop(proc.process, signal.SIGQUIT)


@pytest.fixture
def backends() -> Iterator:
    started: list[Backend] = []

    def start(**behaviour) -> Backend:
        started.append(Backend(**behaviour))
        return started[-1]

    yield start
    for backend in started:
        backend.stop()


def assert_nginx_json_error(response, code: int, status: str) -> None:
    assert response.status_code == code
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert len(response.headers["X-Request-ID"]) == 32
    body = response.json()
    assert (body["code"], body["status"]) == (code, status)
    assert body["message"] and "nginx" not in response.text


def test_when_every_replica_is_down_nginx_answers_the_apis_json_502(proxy, backends, http):
    replicas = [backends(), backends()]
    front = proxy([r.address for r in replicas])
    assert http.get(front.url + "/api/v1/quotes?symbol=BTC").status_code == 200
    for replica in replicas:
        replica.stop()

    response = http.get(front.url + "/api/v1/quotes?symbol=BTC")

    assert_nginx_json_error(response, 502, "Bad Gateway")


def test_a_read_timeout_is_a_json_504_and_is_never_replayed_on_another_replica(proxy, backends, http):
    slow = [backends(delay=3), backends(delay=3)]
    front = proxy([r.address for r in slow],
                  edit=lambda conf: re.sub(r"proxy_read_timeout \d+s;", "proxy_read_timeout 1s;", conf))

    response = http.get(front.url + "/api/v1/quotes?symbol=BTC")

    assert sum(r.hits for r in slow) == 1, [r.hits for r in slow]
    assert_nginx_json_error(response, 504, "Gateway Timeout")


def test_a_replica_that_refuses_connections_is_skipped_for_the_other(proxy, backends, http):
    alive = backends()
    front = proxy([f"127.0.0.1:{free_port()}", alive.address])

    statuses = [http.get(front.url + "/api/v1/quotes?symbol=BTC").status_code for _ in range(4)]

    assert statuses == [200] * 4
    assert alive.hits == 4


def test_the_apps_own_502_passes_through_untouched_and_is_not_retried(proxy, backends, http):
    body = json.dumps({"code": 502, "status": "Bad Gateway", "message": "app-said-" + uuid.uuid4().hex})
    replicas = [backends(status=502, body=body.encode()), backends(status=502, body=body.encode())]
    front = proxy([r.address for r in replicas])

    response = http.get(front.url + "/api/v1/quotes?symbol=BTC")

    assert response.status_code == 502
    assert response.text == body
    assert sum(r.hits for r in replicas) == 1


def status_from(source: str, front, path: str) -> int:
    """The status nginx answers a GET from `source` (another loopback address is not 127.0.0.1)."""
    host, port = front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: coinquote\r\nConnection: close\r\n\r\n".encode())
        return int(sock.recv(1024).split(b" ", 2)[1])


def test_metrics_and_usage_stay_private_also_under_the_path_prefix(proxy, backends, http):
    app = backends()
    front = proxy([app.address])
    private = ["/metrics", "/usage", "/coinquote/metrics", "/coinquote/usage"]

    from_outside = [status_from("127.0.0.2", front, path) for path in private]
    public_from_outside = status_from("127.0.0.2", front, "/coinquote/api/v1/quotes?symbol=BTC")

    assert from_outside == [403] * 4
    assert public_from_outside == 200
    assert app.hits == 1
