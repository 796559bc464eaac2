"""Validation of names, metadata and bodies, with Kubernetes' rules and messages.

Each ``*_errors`` function returns a list of messages (empty when valid). Object
validators collect ``Cause`` dicts (``reason``, ``message``, ``field``) and the registry
raises ``InvalidError`` (422) with them in ``details.causes``. Type errors (a string where
an object belongs) are found earlier by ``schema.check_types`` and are 400s, as a decode
error is in Kubernetes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "Cause",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "label_key_errors",
    "label_value_errors",
    "metadata_causes",
    "name_errors",
    "qualified_name_errors",
]

Cause = dict[str, str]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_QUALIFIED_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def dns1123_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters"
            " or '-', and must start and end with an alphanumeric character"
        )
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _SUBDOMAIN_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric"
            " characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return errors


def name_errors(rule: str, value: str, *, prefix: bool = False) -> list[str]:
    """Errors of a name under ``rule`` ("label" or "subdomain"); ``prefix`` for generateName."""
    if prefix:
        # A generateName is valid if it would be once the random suffix is added.
        value = value + "x"
        if rule == "label" and len(value) > 63:
            value = value[-63:]
    if rule == "label":
        return dns1123_label_errors(value)
    return dns1123_subdomain_errors(value)


def qualified_name_errors(value: str) -> list[str]:
    """A qualified name: ``[prefix/]name``, prefix a DNS subdomain, name <= 63 characters."""
    errors = []
    prefix, _, name = value.rpartition("/")
    if "/" in value:
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend(f"prefix part {e}" for e in dns1123_subdomain_errors(prefix))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_RE.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must"
            " start and end with an alphanumeric character"
        )
    return errors


def label_key_errors(key: str) -> list[str]:
    return qualified_name_errors(key)


def label_value_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _VALUE_RE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters,"
            " '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return errors


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> Cause:
    return {"reason": reason, "message": message, "field": field}


def required(field: str) -> Cause:
    return cause(field, f"Required value: {field} is required", "FieldValueRequired")


def invalid(field: str, value: Any, why: str) -> Cause:
    shown = json.dumps(value) if isinstance(value, str) else value
    return cause(field, f"Invalid value: {shown}: {why}")


def metadata_causes(meta: Mapping[str, Any], rule: str, *, namespaced: bool) -> list[Cause]:
    """Causes for ``metadata``: name/generateName, namespace, labels, annotations, owners."""
    causes: list[Cause] = []
    name, generate = meta.get("name", ""), meta.get("generateName", "")
    if not name and not generate:
        causes.append(
            cause(
                "metadata.name",
                "Required value: name or generateName is required",
                "FieldValueRequired",
            )
        )
    if name:
        causes.extend(invalid("metadata.name", name, e) for e in name_errors(rule, name))
    if generate:
        causes.extend(
            invalid("metadata.generateName", generate, e)
            for e in name_errors(rule, generate, prefix=True)
        )
    namespace = meta.get("namespace", "")
    if namespaced and namespace:
        causes.extend(
            invalid("metadata.namespace", namespace, e) for e in dns1123_label_errors(namespace)
        )
    if not namespaced and namespace:
        causes.append(
            cause(
                "metadata.namespace", "Forbidden: not allowed on this type", "FieldValueForbidden"
            )
        )
    for key, value in (meta.get("labels") or {}).items():
        causes.extend(invalid("metadata.labels", key, e) for e in label_key_errors(key))
        causes.extend(
            invalid(f"metadata.labels[{key}]", value, e) for e in label_value_errors(value)
        )
    annotations = meta.get("annotations") or {}
    for key in annotations:
        causes.extend(
            invalid("metadata.annotations", key, e) for e in qualified_name_errors(key.lower())
        )
    if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        causes.append(
            cause(
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
                "FieldValueTooLong",
            )
        )
    for i, finalizer in enumerate(meta.get("finalizers") or []):
        errors = qualified_name_errors(finalizer)
        causes.extend(invalid(f"metadata.finalizers[{i}]", finalizer, e) for e in errors)
    controllers = 0
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        field = f"metadata.ownerReferences[{i}]"
        for part in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(part):
                causes.append(required(f"{field}.{part}"))
        controllers += bool(ref.get("controller"))
    if controllers > 1:
        causes.append(
            invalid(
                "metadata.ownerReferences",
                controllers,
                "Only one reference can have Controller set to true",
            )
        )
    return causes
