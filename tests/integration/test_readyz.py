"""/readyz checks every memcached server, against two real ones of its own."""

from __future__ import annotations

import pytest

from src.entrypoints.settings import Settings
from tests.conftest import make_client
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY
from tests.servers import Memcached


@pytest.fixture
def own_pair():
    """Two memcached servers of this test only (the session's pair must stay up)."""
    servers = [Memcached().start(), Memcached().start()]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture
def ready_client(own_pair, database_url, engine, cmc):
    settings = Settings(cmc_api_key=FAKE_CMC_KEY, cmc_base_url=cmc.url, database_url=database_url,
                        memcached_servers=tuple(server.address for server in own_pair))
    return make_client(settings)


def test_ready_when_every_memcached_server_answers(ready_client):
    response = ready_client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "cache": "ok"}


@pytest.mark.parametrize("down", [0, 1], ids=["first down", "second down"])
def test_one_memcached_server_down_of_two_is_not_ready_and_is_named(ready_client, own_pair, down):
    failing, alive = own_pair[down], own_pair[1 - down]
    failing.stop()

    response = ready_client.get("/readyz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "failing: cache" and body["checks"]["database"] == "ok"
    assert failing.address in body["checks"]["cache"]
    assert alive.address not in body["checks"]["cache"]


def test_ready_again_once_the_server_is_back(ready_client, own_pair):
    own_pair[0].stop()
    assert ready_client.get("/readyz").status_code == 503

    own_pair[0].start()

    assert ready_client.get("/readyz").status_code == 200
