"""meshforge.generation"""
