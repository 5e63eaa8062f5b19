"""The ``meshforge`` command. Importing this package does nothing."""
