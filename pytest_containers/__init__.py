"""pytest-containers: a pytest plugin and conformance suite for container runtimes and clusters.

Layers: ``plugin`` registers the options, fixtures and hooks with pytest; the adapters
and fixtures it offers build on the reference runtime's library (``reference_runtime``).
"""

__all__: list[str] = []
