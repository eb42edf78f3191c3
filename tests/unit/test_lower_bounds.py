"""setup.cfg's lower bounds are the versions `make test-lowest` installs (constraints/lowest.txt)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def lower_bounds() -> dict[str, str]:
    """Each requirement of install_requires and the test extra, by normalised name: its `>=` bound."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = (config["options"]["install_requires"] + "\n" + config["options.extras_require"]["test"]).split("\n")
    bounds = {}
    for line in filter(None, map(str.strip, lines)):
        name, low = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([^,]+),<.+", line).groups()
        bounds[re.sub(r"[-_.]+", "-", name).lower()] = low
    return bounds


def test_every_lower_bound_in_setup_cfg_is_the_version_the_lowest_run_installs():
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "constraints" / "lowest.txt").read_text(), re.M)
    pinned = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}

    # `make test-lowest` (in .ci/run) installs exactly these and runs the unit tier with them.
    assert pinned.keys() == lower_bounds().keys()
    for name, low in lower_bounds().items():
        assert Version(pinned[name]) == Version(low), (name, pinned[name], low)


def test_tenacitys_lowest_allowed_version_has_the_jitter_multiplier():
    # wait_exponential_jitter(multiplier=...) exists from tenacity 9.2 on: with 9.1.x every
    # provider call raised TypeError.
    assert Version(lower_bounds()["tenacity"]) >= Version("9.2")
