"""How refresh-ahead is deployed: beside gunicorn in `make run`, as its own compose service."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_runs_the_refresher_as_its_own_scalable_service_after_the_migrations():
    refresher = SERVICES["refresher"]

    assert refresher["command"] == ["flask", "--app", "wsgi", "refresh"]
    assert refresher["restart"] == "unless-stopped"
    assert refresher["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert refresher["environment"] == SERVICES["api"]["environment"]  # the same database and memcached
    assert "ports" not in refresher and "container_name" not in refresher
    assert refresher["healthcheck"] == {"disable": True}  # the image's check is an HTTP one


def test_make_run_starts_one_refresher_beside_gunicorn_and_stops_it_with_gunicorn():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)

    assert "flask --app wsgi refresh &" in recipe
    assert re.search(r'trap "kill \$\$refresher.*" EXIT INT TERM', recipe)
    assert recipe.rstrip().endswith("gunicorn wsgi:app")
