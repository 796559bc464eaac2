"""The resources the server serves: names, scope, verbs, subresources and store keys.

One ``Resource`` per (group, version, plural). Adding a resource is adding an entry here
(and, if it has rules of its own, a strategy in ``strategies``). Keys in the store are
``/registry/<plural>/<namespace>/<name>`` (namespaced) or ``/registry/<plural>/<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import NotFoundError

__all__ = ["RESOURCES", "Resource", "find_resource", "resource_for_kind"]

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_SUB_VERBS = ("get", "patch", "update")

KEY_ROOT = "/registry/"


@dataclass(frozen=True)
class Resource:
    """What discovery says about a resource, and where its objects live in the store."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    name_rule: str = "subdomain"  # "label" or "subdomain" (DNS-1123)
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _ALL_VERBS
    field_labels: frozenset[str] = field(default_factory=frozenset)
    create_on_update: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``deployments.apps``: the name Kubernetes uses in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def selectable_fields(self) -> frozenset[str]:
        base = {"metadata.name"} | ({"metadata.namespace"} if self.namespaced else set())
        return frozenset(base) | self.field_labels

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{KEY_ROOT}{self.plural}/{namespace}/{name}"
        return f"{KEY_ROOT}{self.plural}/{name}"

    def prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{KEY_ROOT}{self.plural}/{namespace}/"
        return f"{KEY_ROOT}{self.plural}/"

    def has_status(self) -> bool:
        return "status" in self.subresources


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        namespaced=False,
        name_rule="label",
        short_names=("ns",),
        subresources=("status", "finalize"),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        field_labels=frozenset({"status.phase"}),
    ),
    Resource(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        namespaced=True,
        short_names=("po",),
        categories=("all",),
        subresources=("status", "binding", "log"),
        field_labels=frozenset(
            {
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            }
        ),
    ),
    Resource(
        "",
        "v1",
        "bindings",
        "binding",
        "Binding",
        namespaced=True,
        verbs=("create",),
    ),
    Resource(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        field_labels=frozenset({"spec.unschedulable"}),
    ),
    Resource(
        "",
        "v1",
        "events",
        "event",
        "Event",
        namespaced=True,
        short_names=("ev",),
        field_labels=frozenset(
            {
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            }
        ),
        create_on_update=True,
    ),
    Resource(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        namespaced=True,
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    Resource(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        namespaced=True,
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
        field_labels=frozenset({"status.replicas"}),
    ),
    Resource(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        namespaced=True,
        create_on_update=True,
    ),
)

_BY_NAME: dict[str, Resource] = {}
for _r in RESOURCES:
    _BY_NAME[_r.plural] = _BY_NAME[_r.qualified] = _BY_NAME[
        f"{_r.group}/{_r.version}/{_r.plural}"
    ] = _r


def find_resource(name: str) -> Resource:
    """A resource by plural (``pods``), qualified name (``deployments.apps``) or
    ``group/version/plural``; ``NotFoundError`` if none is served."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise NotFoundError(f"the server could not find the requested resource ({name})") from None


def resource_for_kind(api_version: str, kind: str) -> Resource | None:
    """The resource serving objects of ``kind`` in ``api_version`` (for ownerReferences)."""
    for r in RESOURCES:
        if r.kind == kind and r.api_version == api_version and r.plural != "bindings":
            return r
    return None


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs served, core ("") first, in a stable order."""
    seen: list[tuple[str, str]] = []
    for r in RESOURCES:
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen
