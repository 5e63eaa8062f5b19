"""meshforge plugin: steps backed by PyMeshLab (GPL-3.0). PyMeshLab is imported inside the steps only."""

from meshforge_meshlab.repair import meshforge_repair_steps
from meshforge_meshlab.validate import meshforge_validate_steps

__version__ = "0.1.0"
__all__ = ["meshforge_repair_steps", "meshforge_validate_steps"]
