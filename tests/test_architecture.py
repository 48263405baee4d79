"""The layering the README promises, read from the code's own import statements (nothing is stubbed).

propositions  <-  reward_service  (grader, rewards, server, offline work, CLI)
                      ^ client, schemas, adapters, paths, machine
                  rl_trainer      (a separate process: knows the service only through its client)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("propositions", "reward_service", "rl_trainer")
#: what the trainer may import from the service: the client, its schemas, the trainer adapters, where files are
#: and which dtype this machine computes fastest
TRAINER_SURFACE = {
    "reward_service.client",
    "reward_service.schemas",
    "reward_service.adapters",
    "reward_service.paths",
    "reward_service.machine",
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: functions allowed to be longer, and why
LONG_FUNCTIONS = {
    "reward_service.offline.synth.synthesize": "the generate/grade/accept loop reads best in one piece",
}


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path) -> set[str]:
    """Absolute names of every module `name` imports (relative imports resolved; `from x import y` -> x.y too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


GRAPH = {name: imports_of(name, path) for name, path in modules().items()}


def test_the_graph_reader_resolves_relative_imports():
    assert "reward_service.grader" in GRAPH["reward_service.reward.scoring"]  # from .grader import ...
    assert "reward_service.errors" in GRAPH["reward_service.cli.grading"]  # from ..errors import ...
    assert "reward_service.client" in GRAPH["rl_trainer.ppo"]


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n.startswith("rl_trainer")))
def test_the_trainer_knows_the_service_only_through_its_client(name):
    used = {m for m in GRAPH[name] if m.startswith("reward_service")}
    bad = {m for m in used if m not in TRAINER_SURFACE and not any(m.startswith(s + ".") for s in TRAINER_SURFACE)}
    assert not bad, f"{name} imports {sorted(bad)}; the trainer may import only {sorted(TRAINER_SURFACE)}"


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if not n.startswith("rl_trainer")))
def test_lower_layers_never_import_upper_ones(name):
    upper = ("rl_trainer",) if name.startswith("reward_service") else ("rl_trainer", "reward_service")
    bad = sorted(m for m in GRAPH[name] if m.split(".")[0] in upper)
    assert not bad, f"{name} imports {bad}"


def test_no_import_cycle():
    """Not even for type hints: a module that needs another's types while that one imports it is one module."""
    from graphlib import CycleError, TopologicalSorter

    known = set(GRAPH)
    graph = TopologicalSorter({n: {m for m in GRAPH[n] if m in known and m != n} for n in known})
    try:
        graph.prepare()
    except CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert max(sizes.values()) > 100, "the size check must see the real modules"
    big = {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_no_function_is_over_the_size_limit():
    sizes = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                sizes[f"{name}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert max(sizes.values()) > 40, "the size check must see the real functions"
    big = {n: s for n, s in sizes.items() if s > MAX_FUNCTION_LINES and n not in LONG_FUNCTIONS}
    assert not big, f"functions over {MAX_FUNCTION_LINES} lines: {big}"


def test_the_trainer_surface_imports_no_model_or_server_code():
    code = (
        "import sys, reward_service.client, reward_service.schemas, reward_service.adapters, reward_service.paths\n"
        "import reward_service.machine\n"
        "print(' '.join(m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"importing the trainer surface pulled in: {out.stdout.strip()}"
