"""The ``Registry``'s writes: create, update, patch and a pod's binding, with defaults,
validation, generation and optimistic concurrency on ``resourceVersion``."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import (
    BadRequestError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    ServiceUnavailableError,
    StoreError,
)
from . import status as st
from .deletion import RegistryDeletion
from .objects import Obj, decode, encode, format_time, generate_name, meta
from .patch import apply_patch
from .registry_base import RETRIES, ResourceRef, parse_rv, resolve
from .resources import Resource, find_resource
from .schema import check_types
from .strategies import (
    apply_defaults,
    reset_for_create,
    spec_part,
    validate,
    validate_update,
)
from .validation import cause, metadata_causes

_SYSTEM_META = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


class RegistryWrites(RegistryDeletion):
    """create, update, patch and bind; every write goes through ``_update``."""

    def create(
        self,
        resource: ResourceRef,
        body: Any,
        *,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        r = resolve(resource)
        if r.plural == "bindings":
            if not isinstance(body, dict):
                raise BadRequestError("a Binding must be a JSON object")
            pod = str((body.get("metadata") or {}).get("name") or "")
            return self.bind(pod, body, namespace=namespace, dry_run=dry_run)
        obj = self._decode_body(r, body)
        self._check_scope(r, namespace)
        metadata = meta(obj)
        self._check_body_namespace(r, metadata, namespace)
        if r.namespaced:
            metadata["namespace"] = namespace
        for field in (
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ):
            metadata.pop(field, None)
        metadata["generation"] = 1
        metadata["creationTimestamp"] = format_time(self.clock())
        apply_defaults(r, obj)
        reset_for_create(r, obj)
        causes = (
            metadata_causes(metadata, r.name_rule, namespaced=False)
            if not r.namespaced
            else metadata_causes(
                {k: v for k, v in metadata.items() if k != "namespace"},
                r.name_rule,
                namespaced=True,
            )
        )
        causes += validate(r, obj)
        if causes:
            raise st.invalid(r, metadata.get("name") or metadata.get("generateName", ""), causes)
        if r.namespaced:
            self._check_namespace_open(r, str(namespace), metadata.get("name", ""))
        generated = not metadata.get("name")
        for _ in range(8 if generated else 1):
            if generated:
                metadata["name"] = generate_name(metadata["generateName"])
            metadata["uid"] = str(uuid.uuid4())
            key = r.key(namespace, metadata["name"])
            if dry_run:
                if self._store_call(self.store.get, key) is not None:
                    raise st.already_exists(r, metadata["name"])
                return obj
            try:
                record = self.store.create(key, encode(obj))
            except KeyExistsError:
                continue
            except StoreError as exc:
                raise ServiceUnavailableError(str(exc)) from exc
            metadata["resourceVersion"] = str(record.mod_revision)
            return obj
        raise st.already_exists(r, metadata["name"])

    def update(
        self,
        resource: ResourceRef,
        body: Any,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        """Replace an object (``subresource="status"``: only its status; ``"finalize"``:
        a namespace's spec.finalizers). A ``resourceVersion`` in the body must be current."""
        r = resolve(resource)
        self._check_subresource(r, subresource, ("", "status", "finalize"))
        obj = self._decode_body(r, body)
        self._check_scope(r, namespace)
        metadata = meta(obj)
        self._check_body_namespace(r, metadata, namespace)
        name = name or metadata.get("name", "")
        if metadata.get("name") and metadata["name"] != name:
            raise BadRequestError(
                f"the name of the object ({metadata['name']}) does not match"
                f" the name on the URL ({name})"
            )
        if not name:
            raise BadRequestError("an update needs metadata.name")
        expected = parse_rv(metadata.get("resourceVersion", ""))
        if r.create_on_update and not subresource:
            record = self._store_call(self.store.get, r.key(namespace, name))
            if record is None:
                metadata["name"] = name
                return self.create(r, obj, namespace=namespace, dry_run=dry_run)

        def mutate(current: Obj) -> Obj:
            if subresource == "status":
                new = copy.deepcopy(current)
                new["status"] = obj.get("status", {})
                return new
            if subresource == "finalize":
                new = copy.deepcopy(current)
                new.setdefault("spec", {})["finalizers"] = (obj.get("spec") or {}).get(
                    "finalizers"
                ) or []
                return new
            new = copy.deepcopy(obj)
            if r.has_status():
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            return new

        return self._update(r, namespace, name, mutate, expected=expected, dry_run=dry_run)

    def patch(
        self,
        resource: ResourceRef,
        name: str,
        patch: Any,
        *,
        patch_type: str,
        namespace: str | None = None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        """Apply a patch (``patch.MERGE_PATCH``, ``STRATEGIC_MERGE_PATCH`` or ``JSON_PATCH``)."""
        r = resolve(resource)
        self._check_subresource(r, subresource, ("", "status"))
        self._check_scope(r, namespace)
        expected: int | None = None
        if isinstance(patch, dict):
            rv = (
                (patch.get("metadata") or {}).get("resourceVersion")
                if isinstance(patch.get("metadata"), dict)
                else None
            )
            if rv:
                expected = parse_rv(str(rv))

        def mutate(current: Obj) -> Obj:
            patched = apply_patch(patch_type, current, patch)
            if not isinstance(patched, dict):
                raise BadRequestError(f"the patch turned the {r.kind} into a non-object")
            check_types(patched, r.kind)
            self._check_kind(r, patched)
            new_meta = meta(patched)
            if new_meta.get("name") != name:
                raise BadRequestError("a patch may not change metadata.name")
            if subresource == "status":
                new = copy.deepcopy(current)
                new["status"] = patched.get("status", {})
                return new
            if r.has_status():
                if "status" in current:
                    patched["status"] = copy.deepcopy(current["status"])
                else:
                    patched.pop("status", None)
            return patched

        return self._update(r, namespace, name, mutate, expected=expected, dry_run=dry_run)

    def _update(
        self,
        r: Resource,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], Obj],
        *,
        expected: int | None,
        dry_run: bool,
        binding: bool = False,
    ) -> Obj:
        """Read, ``mutate`` a copy, validate and write with the read revision; retry on a
        conflict unless the caller ``expected`` a revision (then 409)."""
        key = r.key(namespace, name)
        for _ in range(RETRIES):
            record = self._store_call(self.store.get, key)
            if record is None:
                raise st.not_found(r, name)
            if expected is not None and record.mod_revision != expected:
                raise st.conflict(r, name, st.STALE)
            current = decode(record.value, record.mod_revision)
            new = mutate(copy.deepcopy(current))
            self._prepare_update(r, new, current, binding=binding)
            if new == current:
                return current  # a no-op: nothing written, resourceVersion unchanged
            if dry_run:
                return new
            try:
                stored = self.store.update(key, encode(new), record.mod_revision)
            except RevisionConflictError:
                if expected is not None:
                    raise st.conflict(r, name, st.STALE) from None
                continue  # changed under us: re-read, re-apply
            except KeyNotFoundError:
                raise st.not_found(r, name) from None
            except StoreError as exc:
                raise ServiceUnavailableError(str(exc)) from exc
            meta(new)["resourceVersion"] = str(stored.mod_revision)
            if self._ready_to_go(r, new):
                self._remove(r, namespace, name, stored.mod_revision)
            return new
        raise st.conflict(r, name, "too many concurrent writers; try again")

    def _prepare_update(self, r: Resource, new: Obj, current: Obj, *, binding: bool) -> None:
        new_meta, old_meta = meta(new), meta(current)
        for field in _SYSTEM_META:
            if field in old_meta:
                new_meta[field] = old_meta[field]
            else:
                new_meta.pop(field, None)
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        for field in ("selfLink", "generateName"):
            if field not in old_meta:
                new_meta.pop(field, None)
        new["kind"], new["apiVersion"] = r.kind, r.api_version
        apply_defaults(r, new)
        if spec_part(new) != spec_part(current):
            new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
        causes = metadata_causes(
            {k: v for k, v in new_meta.items() if k != "namespace"},
            r.name_rule,
            namespaced=r.namespaced,
        )
        causes += validate(r, new)
        if not binding:  # a binding is the one write allowed to set a pod's spec.nodeName
            causes += validate_update(r, new, current)
        if "deletionTimestamp" in old_meta:
            added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                causes.append(
                    cause(
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {sorted(added)}",
                        "FieldValueForbidden",
                    )
                )
        if causes:
            raise st.invalid(r, new_meta.get("name", ""), causes)

    def bind(self, pod: str, binding: Any, *, namespace: str | None, dry_run: bool = False) -> Obj:
        """``pods/<name>/binding``: set ``spec.nodeName`` once (409 if already bound)."""
        r = find_resource("pods")
        if not isinstance(binding, dict):
            raise BadRequestError("a Binding must be a JSON object")
        check_types(binding, "Binding")
        target = binding.get("target") or {}
        node = target.get("name", "")
        if not node:
            raise st.invalid(
                find_resource("bindings"),
                pod,
                [cause("target.name", "Required value", "FieldValueRequired")],
            )
        m = binding.get("metadata") or {}
        if m.get("name") and m["name"] != pod:
            raise BadRequestError(
                f"the name of the Binding ({m['name']}) does not match the pod ({pod})"
            )
        if not pod:
            raise st.invalid(
                find_resource("bindings"),
                pod,
                [cause("metadata.name", "Required value: name is required", "FieldValueRequired")],
            )
        uid = m.get("uid")

        def mutate(current: Obj) -> Obj:
            current_meta = meta(current)
            if uid and uid != current_meta.get("uid"):
                raise st.conflict(r, pod, "Precondition failed: UID mismatch")
            if "deletionTimestamp" in current_meta:
                raise st.conflict(r, pod, "the pod is being deleted, cannot be assigned to a host")
            spec = current.setdefault("spec", {})
            if spec.get("nodeName"):
                raise st.conflict(
                    r, pod, f'pod {pod} is already assigned to node "{spec["nodeName"]}"'
                )
            spec["nodeName"] = node
            status = current.setdefault("status", {})
            conditions = [
                c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": format_time(self.clock()),
                }
            )
            status["conditions"] = conditions
            return current

        self._update(r, namespace, pod, mutate, expected=None, dry_run=dry_run, binding=True)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }
