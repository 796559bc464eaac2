"""The cluster under test: ``--cluster``, and the ``throwaway_cluster``, ``cluster`` and
``cluster_namespace`` fixtures.

``--cluster=reference`` (default) starts throwaway reference clusters;
``--cluster=kubeconfig`` uses the cluster of ``$KUBECONFIG`` (or ``~/.kube/config``) and
``--cluster=kubeconfig:PATH`` that of PATH (ini ``cluster``). A bad value or a missing
kubeconfig is a usage error. Adapters: ``pytest_containers.clusters``. Ini
``cluster_synthetic_nodes = true`` says a kubeconfig cluster accepts Nodes nothing runs
(hollow ones, on a reference cluster), so the scheduling properties run there too.

Fixtures::

    def test_scale(throwaway_cluster):
        c = throwaway_cluster(nodes=0, hollow_nodes=3)
        c.apps().patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
        c.partition_node(c.node_names()[0])          # every fault the adapter offers

    def test_pod(cluster, cluster_namespace):
        cluster.core().create_namespaced_pod(cluster_namespace, {...})

- ``throwaway_cluster(nodes=3, hollow_nodes=0, store="sqlite")``: a new reference
  cluster (a ``ReferenceCluster``: kubeconfig, client, faults), also a context manager;
  removed at the end of the test whatever happens. Names and state directories carry the
  xdist worker id; each is in the ledger, so a killed worker's cluster is taken down by
  the next session and one left up fails the leak check.
- ``cluster`` (session): the cluster of ``--cluster`` for the conformance suite: one
  throwaway reference cluster per process (``SESSION_SHAPE``), or the kubeconfig's.
- ``cluster_namespace``: a fresh namespace in ``cluster``, deleted (and waited for) after
  the test; recorded in the ledger, so a killed worker's namespace is deleted later.
- ``requires_fault(cluster, "partition_node")`` skips a test, with the reason, when the
  adapter cannot inject that fault.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .clusters import (
    ClusterAdapter,
    ClusterChoice,
    ClusterUnavailableError,
    KubeconfigCluster,
    ReferenceCluster,
)
from .clusters.reference import handle_class
from .errors import ContainersError
from .ledger import Ledger, Record, register_undoer, remove_all
from .plugin import ledger
from .requirements import ENVIRONMENT_KEY

__all__ = [
    "SESSION_SHAPE",
    "ClusterFactory",
    "requires_fault",
]

FACTORY_KEY = pytest.StashKey["ClusterFactory"]()

DEFAULT_STATE_DIR = Path("/run/pytest-containers/cluster")
KIND_CLUSTER = "cluster"
KIND_NAMESPACE = "cluster-namespace"
SESSION_SHAPE: dict[str, Any] = {"nodes": 3, "hollow_nodes": 0, "store": "sqlite"}
"""The reference cluster the conformance suite runs against: three nodes with node agents
that run pods as real containers (the node faults strike them), with short periods
(``Timings.fast()``: a lost node is noticed within seconds). The scheduling tests
register hollow Nodes of their own."""
NAMESPACE_TIMEOUT = 60.0
_ENV_KEY = "containers_cluster_environment"  # in xdist workeroutput


class ClusterFactory:
    """The session's clusters: throwaway reference clusters and the ``--cluster`` one."""

    def __init__(
        self, choice: ClusterChoice, led: Ledger, state_dir: Path, synthetic_nodes: bool = False
    ) -> None:
        self.choice = choice
        self.synthetic_nodes = synthetic_nodes
        self.ledger = led
        self.state_dir = state_dir
        self._session: ClusterAdapter | None = None
        self._live: dict[str, tuple[ReferenceCluster, Record]] = {}
        self.environment: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: pytest.Config) -> ClusterFactory:
        """Parse and check ``--cluster``: ``pytest.UsageError`` naming the accepted forms."""
        value = config.getoption("cluster") or config.getini("cluster")
        try:
            choice = ClusterChoice.parse(value)
            if not (
                getattr(config.option, "help", False) or getattr(config.option, "version", False)
            ):
                choice.check()
        except (ValueError, ContainersError) as exc:
            raise pytest.UsageError(f"--cluster={value}: {exc}") from None
        synthetic = str(config.getini("cluster_synthetic_nodes")).lower() in ("1", "true", "yes")
        return cls(choice, ledger(config), DEFAULT_STATE_DIR, synthetic)

    def throwaway(
        self, nodes: int = 3, hollow_nodes: int = 0, store: str = "sqlite", **options: Any
    ) -> ReferenceCluster:
        """Start a reference cluster, recorded in the ledger; release with ``remove``.

        ``options`` go to ``ClusterHandle.up`` (``timings=Timings.fast()``, ``node_runtime``).
        """
        __tracebackhide__ = True
        for label, count in (("nodes", nodes), ("hollow_nodes", hollow_nodes)):
            if not isinstance(count, int) or count < 0:
                raise ValueError(
                    f"{label} is a count of 0 or more, not {count!r}: "
                    "throwaway_cluster(nodes=3, hollow_nodes=0)"
                )
        name = self.ledger.unique_name("pc")
        record = self.ledger.record(KIND_CLUSTER, name, state_dir=str(self.state_dir), store=store)
        try:
            made = ReferenceCluster.up(
                name,
                state_dir=self.state_dir,
                nodes=nodes,
                hollow_nodes=hollow_nodes,
                store=store,
                **options,
            )
        except BaseException:
            # the handle removes a cluster that failed to come up; make sure of it
            _undo_cluster(record)
            self.ledger.release(record)
            raise
        self._live[name] = (made, record)
        return made

    def remove(self, made: ReferenceCluster) -> None:
        """Take a throwaway cluster down (idempotent) and forget it."""
        __tracebackhide__ = True
        entry = self._live.pop(made.name, None)
        made.close()
        if entry is not None:
            self.ledger.release(entry[1])

    @property
    def session(self) -> ClusterAdapter:
        """The ``--cluster`` cluster, opened on first use."""
        if self._session is None:
            if self.choice.kubeconfig is not None:
                self._session = KubeconfigCluster(self.choice.kubeconfig)
                self._session.synthetic_nodes = self.synthetic_nodes
            else:
                from reference_runtime.cluster.timings import Timings

                self._session = self.throwaway(**SESSION_SHAPE, timings=Timings.fast())
            self._describe(self._session)
        return self._session

    def _describe(self, adapter: ClusterAdapter) -> None:
        """What the report says about the cluster (asked now, while it is up)."""
        self.environment["cluster"] = self.choice.kind
        with contextlib.suppress(Exception):  # a cluster that does not answer: no version
            self.environment["cluster version"] = adapter.server_version()
            self.environment["cluster nodes"] = str(len(adapter.node_names()))

    def close(self) -> None:
        """Remove every throwaway cluster; the first error is raised after all are tried."""
        __tracebackhide__ = True
        errors: list[BaseException] = []
        if self._session is not None and not isinstance(self._session, ReferenceCluster):
            self._session.close()
        self._session = None
        for made, _ in list(self._live.values()):
            try:
                self.remove(made)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


class Throwaways:
    """The throwaway clusters of one test: all removed by ``close``."""

    def __init__(self, factory: ClusterFactory) -> None:
        self.factory = factory
        self.made: list[ReferenceCluster] = []

    def __call__(
        self, nodes: int = 3, hollow_nodes: int = 0, store: str = "sqlite", **options: Any
    ) -> ReferenceCluster:
        __tracebackhide__ = True
        made = self.factory.throwaway(
            nodes=nodes, hollow_nodes=hollow_nodes, store=store, **options
        )
        self.made.append(made)
        return made

    def close(self) -> None:
        __tracebackhide__ = True
        remove_all(self.made, self.factory.remove)


def requires_fault(cluster: ClusterAdapter, *faults: str) -> None:
    """Skip the test, with the reason, unless ``cluster`` can inject every one of ``faults``."""
    __tracebackhide__ = True
    missing = [f for f in faults if f not in cluster.faults]
    if missing:
        pytest.skip(f"the {cluster.kind} cluster cannot inject {', '.join(missing)}")


def make_namespace(factory: ClusterFactory, cluster: ClusterAdapter) -> tuple[str, Record]:
    """Create a fresh namespace in ``cluster``, recorded in the ledger first."""
    name = factory.ledger.unique_name("pc")
    record = factory.ledger.record(KIND_NAMESPACE, name, kubeconfig=str(cluster.kubeconfig))
    try:
        body: Any = {"metadata": {"name": name}}
        cluster.core().create_namespace(body, _request_timeout=30)
    except BaseException:
        factory.ledger.release(record)
        raise
    return name, record


def delete_namespace(
    cluster: ClusterAdapter, name: str, timeout: float = NAMESPACE_TIMEOUT
) -> None:
    """Delete a namespace and wait (bounded) until it and its content are gone."""
    __tracebackhide__ = True
    from kubernetes.client.exceptions import ApiException

    core = cluster.core()
    try:
        core.delete_namespace(name, _request_timeout=30)
    except ApiException as exc:
        if exc.status == 404:  # already gone: deleted by the test itself
            return
        raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:  # gone, with its content: what we wait for
                return
            raise
        time.sleep(0.1)
    raise ContainersError(f"namespace {name} was not gone {timeout:.0f}s after delete")


def _undo_cluster(rec: Record) -> None:
    """Take down a reference cluster a dead session (or a failed start) left."""
    state_dir = Path(rec.details["state_dir"])
    if not (state_dir / rec.name).exists():
        return  # already gone: nothing of it is on the host
    handle_class().attach(rec.name, state_dir=state_dir).down()


def _undo_namespace(rec: Record) -> None:
    """Delete a namespace a dead session left in a kubeconfig cluster."""
    path = Path(rec.details["kubeconfig"])
    if not path.is_file():
        return  # the cluster was a throwaway one, gone with its kubeconfig
    from kubernetes.client.exceptions import ApiException

    cluster = KubeconfigCluster(path)
    try:
        cluster.core().delete_namespace(rec.name, _request_timeout=10)
    except ApiException as exc:
        if exc.status != 404:  # 404: already gone
            raise
    except Exception as exc:  # the cluster does not answer: it went away with the namespace
        if "Connection refused" not in str(exc):
            raise
    finally:
        cluster.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("containers", "pytest-containers")
    group.addoption(
        "--cluster",
        dest="cluster",
        default=None,
        metavar="KIND",
        help="the cluster under test: reference (a throwaway reference cluster), "
        "kubeconfig ($KUBECONFIG or ~/.kube/config) or kubeconfig:PATH "
        "(default: ini cluster, reference)",
    )
    parser.addini("cluster", type="string", default="reference", help="default of --cluster")
    parser.addini(
        "cluster_synthetic_nodes",
        type="string",
        default="false",
        help="true: the kubeconfig cluster accepts Nodes that nothing runs (a reference "
        "cluster reached through a kubeconfig), so the scheduling properties run on it",
    )


@pytest.hookimpl(trylast=True)  # after plugin.py has made the ledger
def pytest_configure(config: pytest.Config) -> None:
    config.stash[FACTORY_KEY] = ClusterFactory.from_config(config)
    register_undoer(KIND_CLUSTER, _undo_cluster)
    register_undoer(KIND_NAMESPACE, _undo_namespace)


@pytest.fixture(scope="session")
def cluster_factory(request: pytest.FixtureRequest) -> Iterator[ClusterFactory]:
    """The session's :class:`ClusterFactory`."""
    factory = request.config.stash[FACTORY_KEY]
    yield factory
    factory.close()


@pytest.fixture
def throwaway_cluster(cluster_factory: ClusterFactory) -> Iterator[Throwaways]:
    """``throwaway_cluster(nodes=3, hollow_nodes=0, store="sqlite") -> ReferenceCluster``."""
    made = Throwaways(cluster_factory)
    yield made
    made.close()


@pytest.fixture(scope="session")
def cluster(cluster_factory: ClusterFactory) -> ClusterAdapter:
    """The ``--cluster`` cluster (one throwaway reference cluster per process)."""
    try:
        return cluster_factory.session
    except ClusterUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def cluster_namespace(cluster_factory: ClusterFactory, cluster: ClusterAdapter) -> Iterator[str]:
    """A fresh namespace in ``cluster``; deleted, and waited for, after the test."""
    name, record = make_namespace(cluster_factory, cluster)
    yield name
    delete_namespace(cluster, name)
    cluster_factory.ledger.release(record)


@pytest.hookimpl(tryfirst=True)  # before the report is written
def pytest_sessionfinish(session: pytest.Session) -> None:
    factory = session.config.stash[FACTORY_KEY]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: only it has opened the cluster
        workeroutput[_ENV_KEY] = dict(factory.environment)
    environment = session.config.stash.setdefault(ENVIRONMENT_KEY, {})
    for key, value in factory.environment.items():
        environment.setdefault(key, value)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    # On the xdist controller: what a worker learnt about the cluster, for the report.
    learnt = (getattr(node, "workeroutput", None) or {}).get(_ENV_KEY) or {}
    factory = node.config.stash[FACTORY_KEY]
    for key, value in learnt.items():
        factory.environment.setdefault(key, value)


def pytest_report_header(config: pytest.Config) -> str:
    return f"containers: cluster {config.stash[FACTORY_KEY].choice.name}"
