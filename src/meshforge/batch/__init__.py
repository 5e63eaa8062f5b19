"""meshforge.batch"""
