"""meshforge.visual"""
