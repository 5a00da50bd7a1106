"""Layers: imports run one way (docs/DESIGN.md), and the index layer never loads torch.

Inside the index layer, two rooms with one arrow: ``search/`` may import ``store/``;
``store/`` imports nothing of ``search/`` (nor the package face, which names both).
"""

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
    """'vidhash.index.store.store' -> 'index'; 'vidhash' (the package root) -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    """Every vidhash module a file imports, at the top or inside a function; a name taken
    from a package (``from vidhash.index.search import mih``) counts as ``package.name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vidhash"):
            package = (PACKAGE.parent / node.module.replace(".", "/")).is_dir()
            found += [f"{node.module}.{a.name}" if package else node.module
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
        "for m in pkgutil.walk_packages(vidhash.index.__path__, 'vidhash.index.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('vidhash.models'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


INDEX = PACKAGE / "index"
# Each room of the index layer, and the rooms it may import (besides itself).
ROOMS: dict[str, set[str]] = {"store": set(), "search": {"store"}}
# Cuts inside a room: (importer, module it must not import, even inside a function).
CUTS = [
    ("store/parts.py", "vidhash.index.store.owners"),  # owners subclasses PartStore
    ("search/file.py", "vidhash.index.search.writer"),  # the reader needs no writer
    ("search/file.py", "vidhash.index.search.repair"),  # nor its lock
]


def test_index_rooms_have_one_arrow_search_to_store() -> None:
    wrong = []
    modules = sorted(INDEX.rglob("*.py"))
    loose = [p.name for p in modules if p.parent == INDEX and p.name != "__init__.py"]
    assert loose == [], "every index module lives in a room (store/ or search/)"
    for path in modules:
        if path.parent == INDEX:
            continue  # the face: names both rooms, lazily
        room = path.relative_to(INDEX).parts[0]
        allowed = {room} | ROOMS[room]
        for module in _imports(path):
            parts = module.split(".")
            if parts[:2] != ["vidhash", "index"]:
                continue
            if len(parts) < 3 or parts[2] not in allowed:
                wrong.append(f"index/{path.relative_to(INDEX)} imports {module}")
    for importer, forbidden in CUTS:
        if forbidden in _imports(INDEX / importer):
            wrong.append(f"index/{importer} imports {forbidden}")
    assert wrong == []


def test_the_face_names_the_public_classes() -> None:
    import vidhash.index
    from vidhash.index.search.index import Index
    from vidhash.index.search.writer import IndexStore
    from vidhash.index.store.store import IndexTables

    assert vidhash.index.Index is Index and vidhash.index.IndexStore is IndexStore
    assert issubclass(IndexStore, IndexTables)
