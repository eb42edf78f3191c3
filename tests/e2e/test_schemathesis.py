"""Schemathesis (its CLI, default checks) against the running service under gunicorn.

The service is wired to real PostgreSQL and memcached and to the fake CoinMarketCap. Checks: no
5xx, documented statuses, content types, headers and body schemas, schema-valid requests
accepted and invalid ones rejected, on every operation. schemathesis.toml holds the one
accepted exception (an unknown `convert` currency's 422 on quotes) and names the filter of the
history's rules OpenAPI cannot state (tests/e2e/schemathesis_hooks.py). Seeded and
deterministic, so CI sees the same cases.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT


def test_schemathesis_finds_no_failure(service, e2e_dir: Path):
    report = e2e_dir / "schemathesis.xml"
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", service.url + "/openapi.json",
         "--seed", "20261126", "--generation-deterministic", "--max-examples", "300",
         "--workers", "1", "--report", "junit", "--report-junit-path", str(report),
         "--no-color"],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 300, output[-3000:]
