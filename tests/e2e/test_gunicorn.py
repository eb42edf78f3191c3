"""coinquote under gunicorn (gunicorn.conf.py, `wsgi:app`), after `flask --app wsgi db upgrade`."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import E2E_KEY, ROOT, base_env, migrate, start_gunicorn
from tests.servers import stop


def calls(fake, http):
    return [c for c in http.get(fake.url + "/__fake__/calls").json()["calls"]
            if c["path"].endswith("quotes/latest")]


def test_quote_is_fetched_once_then_served_from_the_shared_cache(service, fake_cmc_process, http):
    http.delete(fake_cmc_process.url + "/__fake__/calls")

    first = http.get(service.url + "/api/v1/quotes?symbol=DOGE,XRP")
    later = [http.get(service.url + "/api/v1/quotes?symbol=doge,xrp") for _ in range(6)]

    assert first.status_code == 200
    assert {c["source"] for c in first.json()["data"].values()} == {"provider"}
    assert all(r.status_code == 200 for r in later)
    assert all({c["source"] for c in r.json()["data"].values()} == {"cache"} for r in later)
    assert first.json()["data"]["DOGE"]["quote"]["USD"]["price"] == 0.123456789012
    assert len(calls(fake_cmc_process, http)) == 1


def test_docs_and_probes_are_served(service, http):
    assert http.get(service.url + "/healthz").status_code == 200
    assert http.get(service.url + "/readyz").json()["checks"] == {"database": "ok", "cache": "ok"}
    assert http.get(service.url + "/openapi.json").json()["info"]["title"] == "coinquote"
    page = http.get(service.url + "/swagger-ui").text
    assert http.get(service.url + "/docs-assets/swagger_ui/swagger-ui-bundle.js").status_code == 200
    assert "docs-assets/swagger_ui/" in page


def test_errors_are_json_with_the_contract_statuses(service, http):
    assert http.get(service.url + "/api/v1/quotes?symbol=NOPE").status_code == 404
    bad = http.get(service.url + "/api/v1/quotes?symbol=B%0D%0ATC")
    assert bad.status_code == 422 and bad.json()["message"]


def test_the_key_is_in_no_log_line(service, http):
    http.get(service.url + "/api/v1/quotes?symbol=BTC,ETH,NOPE&convert=EUR")

    output = service.output() + service.extra["migrate_output"]

    assert "GET /api/v1/quotes" in output  # the access log is there
    assert E2E_KEY not in output


def test_serves_with_no_database_server_and_no_cache_server(e2e_dir, fake_cmc_process, http):
    """What `make run` promises: SQLite and the in-process cache when nothing is configured."""
    env = base_env(CMC_API_KEY=E2E_KEY, CMC_BASE_URL=fake_cmc_process.url,
                   DATABASE_URL=f"sqlite:///{e2e_dir / 'embedded.db'}")
    assert migrate(env).returncode == 0
    proc = start_gunicorn(env, e2e_dir / "embedded.log", workers=1)
    try:
        first = http.get(proc.url + "/api/v1/quotes?symbol=ETH").json()["data"]["ETH"]
        second = http.get(proc.url + "/api/v1/quotes?symbol=ETH").json()["data"]["ETH"]
    finally:
        stop(proc.process)

    assert (first["source"], second["source"]) == ("provider", "cache")
    assert first["quote"]["USD"]["price"] == 3512.44


def test_a_bad_setting_stops_start_up_naming_the_variable():
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT,
                            env=base_env(CACHE_TTL_SECONDS="sixty"), capture_output=True, text=True)

    assert result.returncode != 0
    assert "CACHE_TTL_SECONDS must be a whole number" in result.stderr
