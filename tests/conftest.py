"""Fixtures shared by every tier."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from src.entrypoints.settings import Settings

TEST_KEY = "test-key-do-not-leak-7d3f9a"


class NoServerErrorClient(FlaskClient):
    """A test client that fails the test on any 500: none may ever reach a user."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        assert response.status_code != 500, response.get_data(as_text=True)
        return response


@pytest.fixture
def settings() -> Settings:
    return Settings(cmc_api_key=TEST_KEY, cmc_base_url="http://127.0.0.1:9")
