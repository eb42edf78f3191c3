"""The refresher outlives outages of real PostgreSQL, memcached and CoinMarketCap, no spinning."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import create_engine, text

from src.entrypoints.app import create_app
from src.entrypoints.settings import Settings
from src.entrypoints.wiring import wiring
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY
from tests.fake_cmc.market import Failure
from tests.fakes_refresh import wait_until
from tests.integration.test_outages import own_memcached, own_postgres  # noqa: F401  fixtures


def btc_price(client) -> float:
    return client.get("/api/v1/quotes?symbol=BTC").get_json()["data"]["BTC"]["quote"]["USD"]["price"]


def test_the_refresher_outlives_every_outage_without_spinning_and_refreshes_after(
        own_postgres, own_memcached, cmc, caplog):  # noqa: F811
    engine = create_engine(own_postgres.url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE quotes, coins, requested_symbols, refresh_lease"))
    engine.dispose()
    app = create_app(Settings(cmc_api_key=FAKE_CMC_KEY, cmc_base_url=cmc.url,
                              database_url=own_postgres.url,
                              memcached_servers=(own_memcached.address,),
                              refresh_interval_seconds=1))
    client = app.test_client()
    assert client.get("/api/v1/quotes?symbol=BTC").status_code == 200
    wiring(app).refresh.demand.flush()
    refresher = wiring(app).refresh.refresher
    stop = threading.Event()

    def refresh_until_stopped() -> None:
        with app.app_context():
            refresher.run(stop, max_wait_seconds=1)

    loop = threading.Thread(target=refresh_until_stopped)
    loop.start()
    try:
        cmc.market.failures.append(Failure(times=10_000))
        own_memcached.stop()
        own_postgres.pause()
        caplog.set_level(logging.INFO)
        caplog.clear()
        time.sleep(5)
        tries = [r for r in caplog.records if r.name == "src.domain.refresh"]
        alive = loop.is_alive()
        own_postgres.resume()
        own_memcached.start()
        cmc.market.failures.clear()
        cmc.market.set_prices({"BTC": "91234.5"})

        assert alive
        assert 1 <= len(tries) <= 8  # about one try a second (its pause), not a spin
        assert wait_until(lambda: btc_price(client) == 91234.5, 30)
    finally:
        stop.set()
        loop.join(10)
