"""The pytest11 entry point of pytest-containers.

Options, adapters, fixtures and report hooks are registered here as they land.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_root: uses real namespaces and cgroups; skipped when not root"
    )
