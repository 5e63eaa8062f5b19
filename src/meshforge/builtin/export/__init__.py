"""builtin/export"""
