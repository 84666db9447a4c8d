"""The code passes the linter (ruff, rules and line length in pyproject.toml) and its layers import downwards only."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "uniwav"

# Lower layers never import higher ones (docs/LAYOUT.md); a module may import its own layer.
LAYERS = ["utils", "checkpoint", "config", "features", "data", "models", "inference", "evaluation", "training", "bench", "app", "recipes",
          "cli"]


def test_ruff_passes():
    if importlib.util.find_spec("ruff") is None:  # the environment's own ruff, whether or not its bin/ is on PATH
        pytest.skip("ruff is not installed (bash install.sh --dev installs it)")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("uniwav", *parts[:-1])) if parts[-1] == "__init__" else ".".join(("uniwav", *parts))


def _import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported uniwav module: line}, for `from uniwav.x import y` and `import uniwav.x` anywhere in it
    (inside functions too: a lazy import is still a dependency)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = {}
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("uniwav"):
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("uniwav")]
            for t in targets:
                if t in modules and t != name:
                    edges.setdefault(t, node.lineno)
        graph[name] = edges
    return graph


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, edges in _import_graph().items():
        here = _layer(module)
        if here not in LAYERS:
            continue
        for target, line in edges.items():
            there = _layer(target)
            if there in LAYERS and LAYERS.index(there) > LAYERS.index(here):
                upward.append(f"{module}:{line} imports {target}")
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    """Not even inside a layer: a circle means two modules share one idea, which belongs in one of them."""
    graph = _import_graph()
    state, circles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                circles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_package_imports_without_the_training_stack():
    code = "import sys, uniwav, uniwav.models.uniwav; assert 'lightning' not in sys.modules, 'models import lightning'"
    subprocess.run([sys.executable, "-c", code], check=True)
