"""Containers that several read-only tests of a module look at (not a test module).

A module's ``shared`` fixture (``conftest.py``) makes one ``SharedContainers``; each
container is made on first use, inside the first test that needs it, so that a refused
create fails a test, and all are deleted at the end of the module.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainersError
from pytest_containers.runtime import ContainerFactory

from ._support import Edit, edit_config, expressible


class SharedContainers:
    """Containers that several read-only tests of a module look at, made on first use,
    and other observations worth making once (``value``)."""

    def __init__(self, factory: ContainerFactory, directory: Path) -> None:
        self.factory = factory
        self.directory = directory
        self.made: dict[str, Any] = {}

    @classmethod
    def in_new_directory(cls, factory: ContainerFactory) -> SharedContainers:
        """Shared containers in a directory of their own, which ``close`` removes."""
        # others may traverse it: a container's root in a user namespace is not the host's root
        directory = Path(tempfile.mkdtemp(prefix="pytest-containers-shared-"))
        directory.chmod(0o711)
        return cls(factory, directory)

    def value(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``, once: later calls return (or raise) what the first one did."""
        __tracebackhide__ = True
        if key not in self.made:
            try:
                self.made[key] = make()
            except Exception as exc:
                self.made[key] = exc  # every test that needs it fails the same way
        made = self.made[key]
        if isinstance(made, Exception):
            with expressible():
                raise made
        return made

    def get(
        self,
        key: str,
        command: Sequence[str],
        *edits: Edit,
        prepare: Callable[[Path], None] | None = None,
        **args: Any,
    ) -> Container:
        """The container ``key``: ``command`` in a bundle of ``args`` with ``edits``
        (``prepare(bundle)`` runs before create)."""
        __tracebackhide__ = True

        def make() -> Container:
            path = edit_config(self.factory.make_bundle(self.directory, command, **args), *edits)
            if prepare is not None:
                prepare(path)
            return self.factory.make_container(self.directory, bundle=path)

        made: Container = self.value(key, make)
        return made

    def close(self) -> None:
        """Delete every shared container: all are killed first, so that the runtimes'
        waits for them to stop overlap; the first error is raised once all were tried."""
        made = [m if isinstance(m, Container) else getattr(m, "container", None)
                for m in self.made.values()]  # fmt: skip
        handles = [m for m in made if isinstance(m, Container)]
        for handle in handles:
            with contextlib.suppress(ContainersError):  # stopped already, or gone
                handle.kill("KILL")
        errors = []
        for handle in handles:
            try:
                self.factory.remove(handle)
            except ContainersError as exc:
                errors.append(exc)
        shutil.rmtree(self.directory, ignore_errors=True)
        if errors:
            raise errors[0]
