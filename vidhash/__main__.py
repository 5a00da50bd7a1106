"""`python -m vidhash` is the `vidhash` command."""

from vidhash.cli import main

main()
