"""The dependency arrows point inward: domain <- adapters <- entrypoints."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}: relative import; use absolute src.* imports")
    return names


def modules_of(layer: str) -> list[Path]:
    files = sorted((SRC / layer).rglob("*.py"))
    assert files, f"no modules found in src/{layer}"
    return files


@pytest.mark.parametrize("path", modules_of("domain"), ids=lambda p: p.name)
def test_domain_imports_only_the_standard_library_and_itself(path):
    for name in imported_modules(path):
        top = name.split(".")[0]
        if name.startswith("src."):
            assert name.startswith("src.domain"), f"{path.name} imports {name}"
        else:
            assert top in sys.stdlib_module_names or top == "__future__", f"{path.name} imports {name}"


@pytest.mark.parametrize("path", modules_of("adapters"), ids=lambda p: p.name)
def test_adapters_never_import_entrypoints(path):
    assert not any(n.startswith("src.entrypoints") for n in imported_modules(path))


def test_only_the_composition_root_builds_adapters():
    builders = ("CoinMarketCapProvider(", "SqlQuoteRepository(", "FlaskCachingQuoteCache(",
                "SharedCreditGovernor(", "SqlHistoryRepository(", "QuoteService(", "Refresher(")
    offenders = [
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if p.name != "bootstrap.py" and any(b in p.read_text() for b in builders)
        and "adapters" not in p.relative_to(SRC).parts
    ]
    assert offenders == []


# Wiring by string: an object fetched from `app.extensions` by a key, or a class named by a
# dotted path (Flask-Caching's CACHE_TYPE, werkzeug's import_string) escapes the type checker.
_EXTENSION_KEY = re.compile(r"extensions(\[|\.get\()\s*[\"']")
_DOTTED_PATH = re.compile(r"[\"']src(\.\w+){2,}[\"']|import_string|CACHE_TYPE")


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: p.name)
def test_nothing_is_wired_by_string(path):
    text = path.read_text()
    if path.relative_to(SRC).as_posix() != "entrypoints/wiring.py":
        assert not _EXTENSION_KEY.search(text), f"{path}: use src.entrypoints.wiring.wiring()"
    assert not _DOTTED_PATH.search(text), f"{path}: build it in src/bootstrap.py, by its class"


def test_no_module_is_over_400_lines():
    long = {p.relative_to(SRC).as_posix(): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_no_folder_holds_more_than_14_modules():
    # A package's __init__.py is its map, not one of its modules.
    crowded = {d.relative_to(SRC).as_posix() or ".": n for d in [SRC, *SRC.rglob("*/")]
               if d.is_dir() and (n := len([p for p in d.glob("*.py")
                                            if p.name != "__init__.py"])) > 14}
    assert crowded == {}
