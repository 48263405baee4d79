"""Helpers of the upstream drivers (run inside the upstream-version subprocess, not by pytest).

Some upstream modules import ray, vllm or deepspeed at top level, which are not installed (and must not
be). For those, `load` parses the installed upstream file, runs its own top-level imports except the ones
that fail only because one of those packages is absent, then execs just the named definitions, compiled
from the upstream source (tracebacks point at the upstream file and line). Nothing is copied: the code
that runs is the installed release's.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType, SimpleNamespace

# Declared upstream requirements that are deliberately not installed here.
ABSENT = frozenset({"ray", "vllm", "deepspeed", "peft", "flash_attn"})
PARTIAL = "_upstream_partial"  # sys.modules prefix of the modules `load` makes


def upstream_root() -> Path:
    """The folder of the `openrlhf` package on sys.path (checked: one of .upstream/openrlhf-<version>)."""
    import openrlhf

    root = Path(openrlhf.__file__).resolve().parent
    version = importlib.metadata.version("openrlhf")
    if root.parent.name != f"openrlhf-{version}":
        raise RuntimeError(f"openrlhf {version} imported from {root}, not from .upstream/openrlhf-{version}")
    return root


def _bound_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    return [a.asname or a.name for a in node.names]


def load(relpath: str, names: list[str], stand_ins: dict | None = None) -> dict:
    """Namespace holding `names` (top-level definitions or assignments, or "Class.method") of
    openrlhf/<relpath>; `stand_ins` pre-bind names the file imports (those imports are then not run).
    The namespace's "__skipped_imports__" lists the upstream imports skipped because of ABSENT packages."""
    path = upstream_root() / relpath
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("openrlhf", *Path(relpath).parent.parts))
    # a module object of its own (dataclasses look their class's module up in sys.modules), named apart
    # from the real module so that nothing takes this partial one for it
    module = ModuleType(f"{PARTIAL}.{package}.{path.stem}")
    sys.modules[module.__name__] = module
    ns = module.__dict__
    ns.update({"__package__": package, "__file__": str(path)}, **(stand_ins or {}))
    skipped: list[str] = []
    picked: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            if all(name in ns for name in _bound_names(node)):
                continue
            try:
                exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), ns)
            except ModuleNotFoundError as e:
                if (e.name or "").split(".")[0] not in ABSENT:
                    raise
                skipped.append(f"{ast.unparse(node)}  # needs {e.name}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            picked[node.name] = node
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                        picked[f"{node.name}.{sub.name}"] = sub
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    picked[target.id] = node
    for name in names:
        if name not in picked:
            raise LookupError(f"{name} is not defined in {path}")
        node = picked[name]
        exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), ns)
        if "." in name:  # a method, defined as a plain function taking `self`
            ns[name] = ns[name.split(".")[1]]
    ns["__skipped_imports__"] = skipped
    return ns


class LocalRay:
    """Stands in for Ray only (not installed): `@ray.remote` functions run in this process when their
    `.remote(...)` is called, `@ray.remote` classes stay plain classes, `ray.get` returns its argument.
    Each remote function call is recorded as (function name, args, kwargs)."""

    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []

    def remote(self, obj):
        if isinstance(obj, type):
            return obj

        def call(*args, **kwargs):
            self.calls.append((obj.__name__, args, kwargs))
            return obj(*args, **kwargs)

        return SimpleNamespace(remote=call, __wrapped__=obj)

    def get(self, refs):
        return refs


def guard_absent() -> None:
    """Fail if anything imported ray, vllm or deepspeed (they must not be needed, nor installed)."""
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ABSENT)
    if leaked:
        raise RuntimeError(f"absent packages were imported: {leaked}")


def tokenizer():
    """The embedded grader's tokenizer (SmolLM2-135M-Instruct, ChatML), standing for the policy's."""
    from transformers import AutoTokenizer

    from reward_service.paths import EMBEDDED_MODEL, resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path(EMBEDDED_MODEL))


def post(url: str, payload: dict) -> dict:
    """What the server answers to a payload (for the report, where upstream only logs a failure)."""
    req = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=180) as r:
            return {"status": r.status, "body": r.read().decode()[:2000]}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()[:2000]}


def floats(t) -> list[float]:
    return [float(x) for x in t.flatten().tolist()]
