"""``python -m meshforge.cli``: the same command as ``meshforge``."""

from meshforge.cli.main import main

main()
