"""Built-in plugins: ordinary pluggy plugins, one module per concern, thin adapters over ``meshforge.ops``."""
