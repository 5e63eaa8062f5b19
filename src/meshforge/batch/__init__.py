"""Catalog-scale batch runs with durable state: ``meshforge batch`` and its Python API.

    from meshforge.batch import Batch
    summary = Batch("catalog.csv", profile="ecommerce-glb", out_dir="out").run(on_result=print)

See docs/batch.md.
"""

from meshforge.batch.catalog import Catalog, JobSpec, RowProblem, read_catalog
from meshforge.batch.runner import Batch, BatchError, BatchSummary, JobResult, Reporter, status
from meshforge.batch.store import BatchStore, StateStore

__all__ = [
    "Batch",
    "BatchError",
    "BatchStore",
    "BatchSummary",
    "Catalog",
    "JobResult",
    "JobSpec",
    "Reporter",
    "RowProblem",
    "StateStore",
    "read_catalog",
    "status",
]
