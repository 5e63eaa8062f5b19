"""Moved to :mod:`meshforge.generation.testing` (a testing aid for provider-plugin authors).

This name stays importable for tests/test_batch.py, and runnable for bench/generation_concurrency.py
(``python tests/provider_server.py --task-seconds 0.2``: prints its URL, serves until killed).
"""

from meshforge.generation.testing import KEY_ENV, PROVIDERS, ProviderServer, cube_glb, main

__all__ = ["KEY_ENV", "PROVIDERS", "ProviderServer", "cube_glb"]

if __name__ == "__main__":
    main()
