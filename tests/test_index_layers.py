"""Layers: imports run one way (docs/DESIGN.md), and the index layer never loads torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vidhash"
BOTTOM = {"errors", "fsutil", "transforms", "media", "metrics"}
# Each part of vidhash, and the parts it may import (besides itself and the bottom).
MAY_IMPORT: dict[str, set[str]] = {
    **{name: set() for name in BOTTOM},
    "video": set(),
    "models": set(),
    "index": set(),
    "train": {"models", "video"},  # video: frames for unlabelled pools
    "eval": {"index", "models"},
    "ingest": {"video", "index", "models", "__init__"},
    "query": {"video", "index", "models"},
    "weights": set(),
}


def _part(module: str) -> str:
    """'vidhash.index.store' -> 'index'; 'vidhash' (the package root) -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    """Every vidhash module a file imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vidhash"):
            found += [f"{node.module}.{a.name}" if node.module == "vidhash" else node.module
                      for a in node.names]  # fmt: skip
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("vidhash")]
    return found


def test_no_import_runs_from_a_lower_layer_up() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if here not in MAY_IMPORT:
            continue  # cli, the package root: the top composes everything
        allowed = {here} | BOTTOM | MAY_IMPORT[here]
        for module in _imports(path):
            target = _part(module)
            if target == "__version__" or module == "vidhash.__version__":
                target = "__init__"
            if target not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_index_modules_do_not_import_torch_or_models() -> None:
    code = (
        "import sys, pkgutil, importlib, vidhash.index\n"
        "for m in pkgutil.iter_modules(vidhash.index.__path__):\n"
        "    importlib.import_module('vidhash.index.' + m.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('vidhash.models'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
