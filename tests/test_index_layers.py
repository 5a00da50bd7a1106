"""The index layer stores bytes and knows nothing of networks: it must not import torch."""

from __future__ import annotations

import subprocess
import sys


def test_index_modules_do_not_import_torch_or_models() -> None:
    code = (
        "import sys\n"
        "import vidhash.index.codes, vidhash.index.store, vidhash.index.search\n"
        "import vidhash.index.annotate, vidhash.index.sheet\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('vidhash.models'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
