"""Helpers shared by the runtime suite's modules (not a test module)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pytest_containers.adapters import CREATED_PROCESS, RuntimeAdapter, require
from pytest_containers.adapters.handle import Container
from pytest_containers.errors import ContainerNotFoundError, ContainersError, NotApplicableError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

Config = dict[str, Any]
Edit = Callable[[Config], None]

TIMEOUT = 15.0
"""Seconds to wait for a program to react (start, a signal, an exit)."""


@contextlib.contextmanager
def expressible() -> Iterator[None]:
    """What the adapter cannot express is reported as not applicable, never as passed."""
    __tracebackhide__ = True
    try:
        yield
    except NotApplicableError as exc:
        not_applicable(exc.reason)


def edit_config(path: Path, *edits: Edit) -> Path:
    """Apply ``edits`` to the bundle's config.json; returns the bundle directory."""
    config_file = path / "config.json"
    config = json.loads(config_file.read_text())
    for edit in edits:
        edit(config)
    config_file.write_text(json.dumps(config, indent=2))
    return path


def start(container: Callable[..., Container], path: Path) -> Container:
    __tracebackhide__ = True
    with expressible():
        return container(bundle=path)


def shell(c: Container, script: str) -> str:
    """Run ``script`` in the container; its stdout (a non-zero exit fails the test)."""
    __tracebackhide__ = True
    result = c.exec(["sh", "-c", script])
    assert result.exit_code == 0, (
        f"`sh -c {script!r}` exited {result.exit_code}: {result.stderr.strip()}"
    )
    return result.stdout


def create_error(
    factory: ContainerFactory, path: Path, what: str, *, nothing_left: bool = False
) -> str:
    """Creating a container from ``path`` must fail; returns the runtime's message.

    Where the adapter makes no process at create (a Docker Engine), the runtime's
    create happens at start, so a refused start counts. ``nothing_left``: a refused
    create must leave no container behind. Whatever was made is deleted.
    """
    __tracebackhide__ = True
    adapter = factory.adapter
    # "-c": runsc looks containers up by ID prefix, and pc-...-2 is a prefix of pc-...-23
    cid = factory.ledger.unique_name("pc") + "-c"
    try:
        with expressible():
            try:
                adapter.create(cid, path)
            except NotApplicableError:
                raise
            except ContainersError as exc:
                if nothing_left:
                    try:
                        left = adapter.state(cid)
                    except ContainerNotFoundError:  # as it should be
                        return str(exc)
                    raise AssertionError(f"a refused create left {left}") from exc
                return str(exc)
            try:
                if CREATED_PROCESS in adapter.unsupported:
                    adapter.start(cid)
            except ContainersError as exc:
                return str(exc)
        raise AssertionError(f"create succeeded with {what}; the spec requires an error")
    finally:
        try:
            adapter.delete(cid, force=True)
        except ContainerNotFoundError:  # refused at create: nothing was made
            pass


def add_capabilities(*names: str) -> Edit:
    def edit(config: Config) -> None:
        caps = config["process"].setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = sorted({*caps.get(kind, []), *names})

    return edit


@contextlib.contextmanager
def refused(requirement: str, what: str) -> Iterator[None]:
    """The verb in the block must fail with an error of the adapter."""
    __tracebackhide__ = True
    try:
        yield
    except ContainersError:
        return
    raise AssertionError(f"{requirement}: {what} succeeded; the spec requires an error")


def sees(pid: int, inside: str, host: Path) -> bool:
    """Process ``pid`` has ``host`` at ``inside`` in its root: it is in the container that
    bind-mounts ``host`` there (``/proc/PID/root`` shows a process's root from the host)."""
    try:
        return os.path.samefile(f"/proc/{pid}/root{inside}", host)
    except OSError:  # no such process, or not that directory
        return False


def needs(adapter: RuntimeAdapter, *features: str) -> None:
    """End the test as not applicable unless ``adapter`` expresses every feature."""
    __tracebackhide__ = True
    for feature in features:
        try:
            require(adapter, feature)
        except NotApplicableError as exc:
            not_applicable(exc.reason)


def docker_lacks(adapter: RuntimeAdapter, what: str) -> None:
    """The docker adapter turns config.json into Engine options (adapters/engine.py) and
    has none for ``what``: it would silently run without it."""
    __tracebackhide__ = True
    if adapter.name == "docker":
        not_applicable(f"docker: the adapter hands the Engine no option for {what}")


def eventually(check: Callable[[], bool], message: str, timeout: float = TIMEOUT) -> None:
    """Poll ``check`` until it holds; ``AssertionError(message)`` after ``timeout``."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:.0f}s)")
        time.sleep(0.02)


def lines(path: Path) -> list[str]:
    """The lines of ``path``; none while it does not exist."""
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def root_entries(adapter: RuntimeAdapter) -> set[str] | None:
    """What the runtime keeps in its state root, where that is a directory (none while
    it does not exist: a runtime may make it on its first command, even a refused one)."""
    try:
        return set(os.listdir(adapter.root))
    except FileNotFoundError:
        return set()
    except NotADirectoryError:
        return None
