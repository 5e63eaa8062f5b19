"""builtin/generate"""
