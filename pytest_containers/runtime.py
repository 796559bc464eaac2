"""The runtime under test: ``--runtime``, and the ``runtime_adapter``, ``bundle`` and
``container`` fixtures.

``--runtime=reference`` (default) | ``runc`` | ``crun`` | ``runsc`` | ``youki`` |
``oci:PATH`` | ``docker`` picks the adapter (ini ``runtime``); ``--runtime-root DIR``
(ini ``runtime_root``) is the state root of an OCI or the reference runtime (default: a
directory of this process's own under /run/pytest-containers/runtime, which also holds
the adapter's scratch files and is removed at the end). A runtime that is not there is
a usage error that says how to get it.

Fixtures::

    def test_hostname(container):
        c = container(["sleep", "30"], hostname="web", memory="64m")
        assert c.exec(["hostname"]).stdout == "web\\n"

    def test_exit_status(bundle, runtime_adapter):
        assert runtime_adapter.run("my-id", bundle(["sh", "-c", "exit 3"])) == 3

- ``runtime_adapter`` (session): the ``RuntimeAdapter`` for ``--runtime``.
- ``bundle(command, **args)``: an OCI bundle directory in ``tmp_path``; the arguments
  are ``bundle_config``'s (env, hostname, cwd, user, memory, pids, cpu, namespaces,
  mounts, readonly, annotations).
- ``container(command, **args)`` or ``container(bundle=path)``: a container, created
  and started (``start=False``: only created), with its stdout and stderr in files;
  deleted when the test ends, whatever happens. IDs carry the xdist worker id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.rootfs_builder import make_bundle

from .adapters import RuntimeAdapter, RuntimeChoice, bundle_config, open_adapter
from .adapters.handle import Container
from .errors import ContainerNotFoundError, ContainersError
from .ledger import Ledger, Record, register_undoer, remove_all
from .plugin import ledger
from .requirements import ENVIRONMENT_KEY

FACTORY_KEY = pytest.StashKey["ContainerFactory"]()

DEFAULT_RUNTIME_ROOT = Path("/run/pytest-containers/runtime")
KIND_CONTAINER = "container"
KIND_DOCKER = "docker-container"


_VERSION_KEY = "containers_runtime_version"  # in xdist workeroutput


class ContainerFactory:
    """The session's runtime: its adapter (opened on first use), bundles and containers."""

    def __init__(self, choice: RuntimeChoice, root: Path | None, led: Ledger) -> None:
        self.choice = choice
        self.ledger = led
        # our own directory, removed at the end: the adapter's scratch files, and the
        # state root too unless the user gave one
        self.base = DEFAULT_RUNTIME_ROOT / led.unique_name("pc")
        self.root = root if root is not None else self.base / "state"
        self._adapter: RuntimeAdapter | None = None
        self.version = ""
        self._live: dict[str, tuple[Container, Record]] = {}

    @classmethod
    def from_config(cls, config: pytest.Config) -> ContainerFactory:
        """Parse and check ``--runtime``: ``pytest.UsageError`` naming the fix if it is not here."""
        value = config.getoption("runtime") or config.getini("runtime")
        root = config.getoption("runtime_root") or config.getini("runtime_root") or None
        try:
            choice = RuntimeChoice.parse(value)
            if not (
                getattr(config.option, "help", False) or getattr(config.option, "version", False)
            ):
                choice.check()
        except (ValueError, ContainersError) as exc:
            raise pytest.UsageError(f"--runtime={value}: {exc}") from None
        return cls(choice, Path(root).absolute() if root else None, ledger(config))

    @property
    def adapter(self) -> RuntimeAdapter:
        if self._adapter is None:
            self._adapter = open_adapter(
                self.choice, self.root, workdir=self.base / "work", session=self.ledger.tag
            )
            # asked now, while the adapter is open, for the conformance report
            with contextlib.suppress(ContainersError):
                self.version = self._adapter.version()
        return self._adapter

    def make_bundle(self, directory: Path, command: Sequence[str] = ("true",), **args: Any) -> Path:
        """A bundle in a new directory under ``directory``; ``args`` are ``bundle_config``'s."""
        __tracebackhide__ = True
        config = bundle_config(command, **args)
        return make_bundle(directory / self.ledger.unique_name("bundle"), config=config)

    def make_container(
        self,
        directory: Path,
        command: Sequence[str] | None = None,
        *,
        bundle: Path | None = None,
        start: bool = True,
        **args: Any,
    ) -> Container:
        """Create (and ``start``) a container; see the module doc. Release with ``remove``."""
        __tracebackhide__ = True
        if bundle is not None and (command is not None or args):
            raise TypeError(
                "pass either bundle=PATH or the bundle's arguments: container(bundle=path) "
                "or container(['sleep', '30'], hostname='web')"
            )
        adapter = self.adapter
        # prefix-free: runsc finds a container by any unique prefix of its ID
        cid = self.ledger.unique_name("pc") + "-c"
        if bundle is None:
            bundle = self.make_bundle(directory, command or ["sleep", "3600"], **args)
        handle = Container.prepare(adapter, cid, Path(bundle), directory)
        record = self._record(adapter, cid)
        self._live[cid] = (handle, record)
        try:
            handle.create()
            if start:
                adapter.start(cid)
        except BaseException:
            self.remove(handle)
            raise
        return handle

    def _record(self, adapter: RuntimeAdapter, cid: str) -> Record:
        if self.choice.kind == "docker":
            return self.ledger.record(KIND_DOCKER, cid, host=adapter.root, id=cid)
        return self.ledger.record(
            KIND_CONTAINER,
            cid,
            adapter=self.choice.name,
            root=str(self.root),
            id=cid,
            base=str(self.base),
        )

    def remove(self, handle: Container) -> None:
        """Delete the container (idempotent) and forget it."""
        __tracebackhide__ = True
        entry = self._live.pop(handle.id, None)
        try:
            handle.adapter.delete(handle.id, force=True)
        except ContainerNotFoundError:  # already gone: deleted by the test, or never made
            pass
        if entry is not None:
            self.ledger.release(entry[1])

    def close(self) -> None:
        """Delete what is left, close the adapter, remove our own state root (idempotent)."""
        __tracebackhide__ = True
        try:
            for handle, _ in list(self._live.values()):
                self.remove(handle)
        finally:
            if self._adapter is not None:
                self._adapter.close()
                self._adapter = None
            _remove_base(self.base, self.root)


def _remove_base(base: Path, root: Path) -> None:
    """Remove our per-process directory, unless container state is left in it."""
    try:
        if base in root.parents and any(root.iterdir()):
            return  # something still lives there: the leak check will name it
    except FileNotFoundError:  # no container was ever made: the root was never created
        pass
    for _ in range(3):  # a monitor may be writing its last exit file as we remove
        shutil.rmtree(base, ignore_errors=True)
        if not base.exists():
            break
        time.sleep(0.05)
    with contextlib.suppress(OSError):  # ENOTEMPTY: other sessions' directories are there
        base.parent.rmdir()


def _undo_container(rec: Record) -> None:
    """Delete a container a dead session left, then its state root if it is empty."""
    details = rec.details
    adapter = open_adapter(details["adapter"], details["root"])
    try:
        adapter.delete(details["id"], force=True)
    except ContainerNotFoundError:  # already gone
        pass
    finally:
        adapter.close()
    if details.get("base"):
        _remove_base(Path(details["base"]), Path(details["root"]))


def _undo_docker_container(rec: Record) -> None:
    """Remove a Docker container a dead session left."""
    host = str(rec.details["host"])
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        return  # the engine's socket is gone: a throwaway daemon, removed with its data
    from .adapters.docker import DockerAdapter

    adapter = DockerAdapter(host)
    try:
        adapter.delete(str(rec.details["id"]), force=True)
    except ContainerNotFoundError:  # already gone
        pass
    finally:
        adapter.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("containers", "pytest-containers")
    group.addoption(
        "--runtime",
        dest="runtime",
        default=None,
        metavar="NAME",
        help="the runtime under test: reference, runc, crun, runsc, youki, oci:PATH or "
        "docker (default: ini runtime, reference)",
    )
    group.addoption(
        "--runtime-root",
        dest="runtime_root",
        default=None,
        metavar="DIR",
        help="state root (--root) of the runtime under test (default: ini runtime_root, "
        f"else a directory of this session's own under {DEFAULT_RUNTIME_ROOT})",
    )
    parser.addini("runtime", type="string", default="reference", help="default of --runtime")
    parser.addini("runtime_root", type="string", default="", help="default of --runtime-root")


@pytest.hookimpl(trylast=True)  # after plugin.py has made the ledger
def pytest_configure(config: pytest.Config) -> None:
    config.stash[FACTORY_KEY] = ContainerFactory.from_config(config)
    register_undoer(KIND_CONTAINER, _undo_container)
    register_undoer(KIND_DOCKER, _undo_docker_container)


@pytest.fixture(scope="session")
def container_factory(request: pytest.FixtureRequest) -> Iterator[ContainerFactory]:
    """The session's :class:`ContainerFactory`, for session-scoped fixtures."""
    factory = request.config.stash[FACTORY_KEY]
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def runtime_adapter(container_factory: ContainerFactory) -> RuntimeAdapter:
    """The ``RuntimeAdapter`` of ``--runtime`` (one per session and process)."""
    return container_factory.adapter


@pytest.fixture
def bundle(container_factory: ContainerFactory, tmp_path: Path) -> Callable[..., Path]:
    """``bundle(["sh", "-c", "..."], hostname=..., memory=...) -> Path`` of a new bundle."""

    def make(command: Sequence[str] = ("true",), **args: Any) -> Path:
        __tracebackhide__ = True
        return container_factory.make_bundle(tmp_path, command, **args)

    return make


@pytest.fixture
def container(
    container_factory: ContainerFactory, tmp_path: Path
) -> Iterator[Callable[..., Container]]:
    """``container(command, **bundle_args)`` -> a started :class:`Container`, deleted after."""
    made = ContainerSet(container_factory, tmp_path)
    yield made.make
    made.close()


class ContainerSet:
    """The containers of one test: made through the factory, all removed by ``close``."""

    def __init__(self, factory: ContainerFactory, directory: Path) -> None:
        self.factory = factory
        self.directory = directory
        self.made: list[Container] = []

    def make(self, command: Sequence[str] | None = None, **kwargs: Any) -> Container:
        __tracebackhide__ = True
        handle = self.factory.make_container(self.directory, command, **kwargs)
        self.made.append(handle)
        return handle

    def close(self) -> None:
        """Remove every container; all are tried, the first error is raised."""
        __tracebackhide__ = True
        remove_all(self.made, self.factory.remove)


@pytest.hookimpl(tryfirst=True)  # before the report is written
def pytest_sessionfinish(session: pytest.Session) -> None:
    factory = session.config.stash[FACTORY_KEY]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: only it has opened the adapter
        workeroutput[_VERSION_KEY] = factory.version
    environment = session.config.stash.setdefault(ENVIRONMENT_KEY, {})
    environment.setdefault("runtime", factory.choice.name)
    if factory.version:
        environment.setdefault("runtime version", factory.version)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    # On the xdist controller: the version a worker learnt, for the report.
    version = (getattr(node, "workeroutput", None) or {}).get(_VERSION_KEY, "")
    factory = node.config.stash[FACTORY_KEY]
    if version and not factory.version:
        factory.version = version


def pytest_report_header(config: pytest.Config) -> str:
    factory = config.stash[FACTORY_KEY]
    return f"containers: runtime {factory.choice.name}, state root {factory.root}"
