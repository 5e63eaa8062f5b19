"""builtin/validate"""
