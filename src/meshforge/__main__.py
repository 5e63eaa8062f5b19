"""``python -m meshforge``: the same command as ``meshforge``."""

from meshforge.cli.main import main

main()
