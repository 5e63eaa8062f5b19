"""builtin/preprocess"""
