"""Imports go bot -> retriever -> store, never back; only bot/ touches discord or argv."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"store": 0, "retriever": 1, "bot": 2}
# Only the application layer may reach for the environment, argv or Discord.
BOT_ONLY = {"discord", "argparse", "pydantic_settings", "dotenv"}


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", ["store", "retriever"])
def test_lower_layers_never_import_upper_ones(package: str) -> None:
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports(path):
            top = module.split(".")[0]
            if top in LAYERS and LAYERS[top] > LAYERS[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
            if top in BOT_ONLY:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


@pytest.mark.parametrize("package", ["store", "retriever"])
def test_lower_layers_do_not_read_the_environment_or_argv(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in ("os.environ[", "os.getenv(", "sys.argv"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from bot.settings import Settings\nimport discord\n", encoding="utf-8")
    assert [m for _, m in imports(bad)] == ["bot.settings", "discord"]
