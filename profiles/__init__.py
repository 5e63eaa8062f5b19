"""Profiles packaged with meshforge (TOML files, read through importlib.resources)."""
