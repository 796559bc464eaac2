"""The pytest11 entry point of pytest-containers.

Each feature is a plugin module of its own (options, fixtures, hooks), loaded through
``pytest_plugins`` below; this module only holds what they share: the ``containers``
option group is created by whichever feature module asks first, and the ledger of
host resources lives here.
"""

from __future__ import annotations

import pytest

from .ledger import DEFAULT_ROOT, Ledger, reap_dead, worker_id

pytest_plugins = [
    # feature modules register here, one line each
    "pytest_containers.requirements",
    "pytest_containers.report",
    "pytest_containers.namespaces",
    "pytest_containers.cgroups",
    "pytest_containers.netns",
    "pytest_containers.leaks",
    "pytest_containers.runtime",
    "pytest_containers.cluster",
]

LEDGER_KEY = pytest.StashKey[Ledger]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("containers", "pytest-containers")
    group.addoption(
        "--containers-ledger",
        default=None,
        help=f"directory recording the host resources the plugin makes (default {DEFAULT_ROOT})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_root: uses real namespaces and cgroups; skipped when not root"
    )
    from pathlib import Path

    root = Path(config.getoption("--containers-ledger") or DEFAULT_ROOT)
    config.stash[LEDGER_KEY] = Ledger.for_process(root, worker_id(config))


def ledger(config: pytest.Config) -> Ledger:
    """The ledger of this pytest process."""
    return config.stash[LEDGER_KEY]


def pytest_sessionstart(session: pytest.Session) -> None:
    # Reap what a killed worker of an earlier session left behind.
    led = session.config.stash[LEDGER_KEY]
    undone, failed = reap_dead(led.root)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and (undone or failed):
        for line in undone:
            reporter.write_line(f"pytest-containers: reaped {line} left by a dead session")
        for line in failed:
            reporter.write_line(f"pytest-containers: could not reap {line}", red=True)
