"""The code passes the linter (ruff, rules and line length in pyproject.toml) and its layers import downwards only."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "uniwav"

# Lower layers never import higher ones (README, "Layout"); a module may import its own layer.
LAYERS = ["utils", "checkpoint", "config", "features", "data", "models", "inference", "evaluation", "training", "bench", "app", "recipes",
          "cli"]


def test_ruff_passes():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (bash install.sh --dev installs it)")
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        here = _layer("uniwav." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if here not in LAYERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("uniwav."):
                there = _layer(node.module)
                if there in LAYERS and LAYERS.index(there) > LAYERS.index(here):
                    upward.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    assert not upward, "\n".join(upward)


def test_package_imports_without_the_training_stack():
    code = "import sys, uniwav, uniwav.models.uniwav; assert 'lightning' not in sys.modules, 'models import lightning'"
    subprocess.run([sys.executable, "-c", code], check=True)
