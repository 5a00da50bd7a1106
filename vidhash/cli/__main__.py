"""`python -m vidhash.cli` is the `vidhash` command (used by subprocess tests)."""

from vidhash.cli import main

main()
