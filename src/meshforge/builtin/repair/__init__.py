"""builtin/repair"""
