"""Per-kind rules: defaults, what create resets, spec validation and immutable fields.

The registry calls these in a fixed order on every write: ``apply_defaults``, then (on
create) ``reset_for_create``, then ``validate`` (and ``validate_update`` against the old
object on updates). Each returns or mutates plain JSON dicts; validators return causes.
"""

from __future__ import annotations

import copy
from typing import Any

from .resources import Resource
from .validation import (
    Cause,
    cause,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    invalid,
    label_key_errors,
    label_value_errors,
    required,
)

__all__ = [
    "apply_defaults",
    "field_value",
    "reset_for_create",
    "spec_part",
    "validate",
    "validate_update",
]

Obj = dict[str, Any]


# -- defaults ------------------------------------------------------------------------------


def apply_defaults(resource: Resource, obj: Obj) -> None:
    kind = resource.kind
    if kind == "Pod":
        _pod_spec_defaults(obj.setdefault("spec", {}))
    elif kind in ("Deployment", "ReplicaSet"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        template = spec.setdefault("template", {})
        if isinstance(template.get("spec"), dict):
            _pod_spec_defaults(template["spec"])
        if kind == "ReplicaSet" and isinstance(obj.get("status"), dict):
            obj["status"].setdefault("replicas", 0)  # not omitempty in Kubernetes' types
        if kind == "Deployment":
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        if obj["metadata"].get("name"):
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _pod_spec_defaults(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        if isinstance(container, dict):
            image = str(container.get("image", ""))
            latest = image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def reset_for_create(resource: Resource, obj: Obj) -> None:
    """Status a client may not set on create (nodes and events keep theirs)."""
    kind = resource.kind
    if kind == "Pod":
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj["spec"])}
    elif kind == "Deployment":
        obj["status"] = {}
    elif kind == "ReplicaSet":
        obj["status"] = {"replicas": 0}
    elif kind == "Namespace":
        obj["status"] = {"phase": "Active"}


def _qos_class(spec: Obj) -> str:
    containers = spec.get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits = r.get("limits") or {}
        requests = r.get("requests") or limits
        for name in ("cpu", "memory"):
            if name not in limits or str(limits[name]) != str(requests.get(name)):
                return "Burstable"
    return "Guaranteed"


def spec_part(obj: Obj) -> Obj:
    """Everything but metadata and status: a change here bumps ``metadata.generation``."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


# -- validation ----------------------------------------------------------------------------


def validate(resource: Resource, obj: Obj) -> list[Cause]:
    kind = resource.kind
    if kind == "Pod":
        return _pod_spec_causes(obj.get("spec"), "spec")
    if kind in ("Deployment", "ReplicaSet"):
        return _workload_causes(kind, obj.get("spec") or {})
    if kind == "Lease":
        spec = obj.get("spec") or {}
        causes = []
        if spec.get("leaseDurationSeconds", 1) <= 0:
            causes.append(
                invalid(
                    "spec.leaseDurationSeconds",
                    spec["leaseDurationSeconds"],
                    "must be greater than 0",
                )
            )
        if spec.get("leaseTransitions", 0) < 0:
            causes.append(
                invalid(
                    "spec.leaseTransitions",
                    spec["leaseTransitions"],
                    "must be greater than or equal to 0",
                )
            )
        return causes
    if kind == "Event":
        if "involvedObject" not in obj:
            return [required("involvedObject")]
        involved = obj.get("involvedObject") or {}
        namespace = obj.get("metadata", {}).get("namespace", "")
        if involved.get("namespace") and involved["namespace"] != namespace:
            return [
                invalid(
                    "involvedObject.namespace",
                    involved["namespace"],
                    "does not match event.namespace",
                )
            ]
    return []


def _pod_spec_causes(spec: Any, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required(path)]
    causes: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(required(f"{path}.containers"))
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            field = f"{path}.{group}[{i}]"
            name = container.get("name", "")
            if not name:
                causes.append(required(f"{field}.name"))
            else:
                causes.extend(invalid(f"{field}.name", name, e) for e in dns1123_label_errors(name))
                if name in names:
                    causes.append(
                        cause(f"{field}.name", f"Duplicate value: {name!r}", "FieldValueDuplicate")
                    )
                names.add(name)
            if not container.get("image", "").strip():
                causes.append(required(f"{field}.image"))
            for j, port in enumerate(container.get("ports") or []):
                number = port.get("containerPort", 0)
                if not 1 <= number <= 65535:
                    causes.append(
                        invalid(
                            f"{field}.ports[{j}].containerPort",
                            number,
                            "must be between 1 and 65535, inclusive",
                        )
                    )
            for j, env in enumerate(container.get("env") or []):
                if not env.get("name"):
                    causes.append(required(f"{field}.env[{j}].name"))
    policy = spec.get("restartPolicy", "Always")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            cause(
                f"{path}.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
                "FieldValueNotSupported",
            )
        )
    if spec.get("terminationGracePeriodSeconds", 0) < 0:
        causes.append(
            invalid(
                f"{path}.terminationGracePeriodSeconds",
                spec["terminationGracePeriodSeconds"],
                "must be greater than or equal to 0",
            )
        )
    node = spec.get("nodeName", "")
    if node:
        causes.extend(invalid(f"{path}.nodeName", node, e) for e in dns1123_subdomain_errors(node))
    for key, value in (spec.get("nodeSelector") or {}).items():
        causes.extend(invalid(f"{path}.nodeSelector", key, e) for e in label_key_errors(key))
        causes.extend(
            invalid(f"{path}.nodeSelector[{key}]", value, e) for e in label_value_errors(value)
        )
    return causes


def selector_causes(selector: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        causes.extend(invalid(f"{path}.matchLabels", key, e) for e in label_key_errors(key))
        causes.extend(invalid(f"{path}.matchLabels", value, e) for e in label_value_errors(value))
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        field = f"{path}.matchExpressions[{i}]"
        causes.extend(
            invalid(f"{field}.key", expr.get("key", ""), e)
            for e in label_key_errors(expr.get("key", ""))
        )
        op, values = expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn") and not values:
            causes.append(required(f"{field}.values"))
        elif op in ("Exists", "DoesNotExist") and values:
            causes.append(
                cause(
                    f"{field}.values",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    "FieldValueForbidden",
                )
            )
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append(
                cause(
                    f"{field}.operator",
                    f'Unsupported value: "{op}": supported values:'
                    ' "In", "NotIn", "Exists", "DoesNotExist"',
                    "FieldValueNotSupported",
                )
            )
        causes.extend(
            invalid(f"{field}.values", v, e) for v in values for e in label_value_errors(v)
        )
    return causes


def _workload_causes(kind: str, spec: Obj) -> list[Cause]:
    from .selectors import selector_from_object

    causes: list[Cause] = []
    if spec.get("replicas", 0) < 0:
        causes.append(
            invalid("spec.replicas", spec["replicas"], "must be greater than or equal to 0")
        )
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(
            cause(
                "spec.selector",
                "Required value"
                if not selector
                else "Invalid value: empty selector is invalid for deployment",
                "FieldValueRequired" if not selector else "FieldValueInvalid",
            )
        )
        selector = None
    else:
        selector_causes_ = selector_causes(selector, "spec.selector")
        causes.extend(selector_causes_)
        if selector_causes_:
            selector = None
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    for key, value in labels.items():
        causes.extend(
            invalid("spec.template.metadata.labels", key, e) for e in label_key_errors(key)
        )
        causes.extend(
            invalid("spec.template.metadata.labels", value, e) for e in label_value_errors(value)
        )
    if selector is not None and not selector_from_object(selector).matches(labels):
        causes.append(
            invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    causes.extend(_pod_spec_causes(template.get("spec"), "spec.template.spec"))
    policy = (template.get("spec") or {}).get("restartPolicy", "Always")
    if policy != "Always":
        causes.append(
            cause(
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always"',
                "FieldValueNotSupported",
            )
        )
    if kind == "Deployment":
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        if strategy not in ("RollingUpdate", "Recreate"):
            causes.append(
                cause(
                    "spec.strategy.type",
                    f'Unsupported value: "{strategy}":'
                    ' supported values: "Recreate", "RollingUpdate"',
                    "FieldValueNotSupported",
                )
            )
    return causes


_POD_MUTABLE = (
    "`spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`,"
    " `spec.tolerations` (only additions to existing tolerations)"
    " or `spec.terminationGracePeriodSeconds`"
)


def validate_update(resource: Resource, new: Obj, old: Obj) -> list[Cause]:
    kind = resource.kind
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if kind == "Pod" and _pod_spec_frozen(new_spec) != _pod_spec_frozen(old_spec):
        message = f"Forbidden: pod updates may not change fields other than {_POD_MUTABLE}"
        return [cause("spec", message, "FieldValueForbidden")]
    workload = kind in ("Deployment", "ReplicaSet")
    if workload and new_spec.get("selector") != old_spec.get("selector"):
        return [invalid("spec.selector", new_spec.get("selector"), "field is immutable")]
    return []


def _pod_spec_frozen(spec: Obj) -> Obj:
    frozen = copy.deepcopy(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        frozen.pop(key, None)
    for group in ("containers", "initContainers"):
        for container in frozen.get(group) or []:
            container.pop("image", None)
    return frozen


# -- field selectors -----------------------------------------------------------------------


def field_value(obj: Obj, field: str) -> str:
    """The string a field selector compares for ``field`` (``""`` when absent)."""
    path = "source.component" if field == "source" else field
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
