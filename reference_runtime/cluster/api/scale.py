"""The ``Registry``'s ``scale`` subresource (deployments, replicasets)."""

from __future__ import annotations

from typing import Any

from ..errors import (
    BadRequestError,
)
from . import status as st
from .objects import Obj, meta
from .patch import apply_patch
from .reads import RegistryReads
from .registry_base import ResourceRef, parse_rv, resolve
from .resources import Resource
from .schema import check_types
from .validation import cause
from .writes import RegistryWrites


class RegistryScale(RegistryWrites, RegistryReads):
    """get_scale and update_scale: a ``Scale`` view of ``spec.replicas``."""

    def get_scale(self, resource: ResourceRef, name: str, *, namespace: str | None = None) -> Obj:
        r = resolve(resource)
        self._check_subresource(r, "scale", ("scale",))
        return _scale_of(r, self.get(r, name, namespace=namespace))

    def update_scale(
        self,
        resource: ResourceRef,
        name: str,
        scale: Any,
        *,
        namespace: str | None = None,
        patch_type: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """PUT (``patch_type=None``) or PATCH the ``scale`` subresource: only ``spec.replicas``."""
        r = resolve(resource)
        self._check_subresource(r, "scale", ("scale",))
        expected: int | None = None

        def mutate(current: Obj) -> Obj:
            nonlocal expected
            body = scale
            if patch_type is not None:
                body = apply_patch(patch_type, _scale_of(r, current), scale)
            if not isinstance(body, dict):
                raise BadRequestError("a Scale must be a JSON object")
            check_types(body, "Scale")
            replicas = (body.get("spec") or {}).get("replicas", 0)
            if replicas < 0:
                raise st.invalid(
                    r,
                    name,
                    [
                        cause(
                            "spec.replicas",
                            f"Invalid value: {replicas}: must be greater than or equal to 0",
                        )
                    ],
                )
            current.setdefault("spec", {})["replicas"] = replicas
            return current

        if patch_type is None and isinstance(scale, dict):
            rv = (
                (scale.get("metadata") or {}).get("resourceVersion")
                if isinstance(scale.get("metadata"), dict)
                else None
            )
            expected = parse_rv(str(rv)) if rv else None
        updated = self._update(r, namespace, name, mutate, expected=expected, dry_run=dry_run)
        return _scale_of(r, updated)


def _scale_of(r: Resource, obj: Obj) -> Obj:
    from .selectors import selector_from_object

    m = meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: m[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in m
        },
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": str(selector_from_object(spec.get("selector"))),
        },
    }
