"""The Kubernetes API semantics over a ``Store``, in-process: the ``Registry``.

Everything the HTTP server serves goes through here, and so should every in-process
client (scheduler, controllers, node agents): it validates, defaults, keeps
``metadata`` (uid, creationTimestamp, generation, resourceVersion) and implements
optimistic concurrency, finalizers, deletion propagation and namespace lifecycle.
Objects are plain JSON dicts; every method returns a fresh copy the caller may change.
Errors are ``ApiError``s (``NotFoundError``, ``ConflictError``, ``InvalidError``...).

Resources are named by plural (``"pods"``), ``"deployments.apps"`` or a ``Resource``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    ApiError,
    BadRequestError,
    ForbiddenError,
    KeyExistsError,
    KeyNotFoundError,
    NotFoundError,
    RevisionConflictError,
    ServerTimeoutError,
    ServiceUnavailableError,
    StoreError,
)
from ..store import Store
from . import status as st
from .objects import Obj, decode, encode, format_time, generate_name, meta
from .patch import apply_patch
from .resources import Resource, find_resource
from .schema import check_types
from .selectors import parse_field_selector, parse_label_selector
from .strategies import (
    apply_defaults,
    field_value,
    reset_for_create,
    spec_part,
    validate,
    validate_update,
)
from .validation import cause, metadata_causes
from .watch import DEFAULT_BOOKMARK_INTERVAL, ApiWatch, open_watch

__all__ = ["DeleteResult", "Registry", "ResourceRef"]

ResourceRef = str | Resource

# Finalizers the API server itself acts on.
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
NAMESPACE_FINALIZER = "kubernetes"
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_SYSTEM_META = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)
_RETRIES = 20


@dataclass
class DeleteResult:
    """The object as deletion left it, and whether it is gone (else only marked)."""

    object: Obj
    deleted: bool


class Registry:
    """Kubernetes API semantics over ``store``. Thread-safe."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.bookmark_interval = bookmark_interval
        self._lock = threading.Lock()

    def bootstrap(self) -> None:
        """Create the namespaces every cluster has (idempotent)."""
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            try:
                self.create("namespaces", {"metadata": {"name": name}})
            except ApiError as exc:
                if exc.code != 409:
                    raise

    # -- reads ---------------------------------------------------------------------------

    def get(self, resource: ResourceRef, name: str, *, namespace: str | None = None) -> Obj:
        r = _resolve(resource)
        self._check_scope(r, namespace)
        record = self._store_call(self.store.get, r.key(namespace, name))
        if record is None:
            raise st.not_found(r, name)
        return decode(record.value, record.mod_revision)

    def list(
        self,
        resource: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
    ) -> Obj:
        """A ``<Kind>List``; ``limit``/``continue_token`` page it (pages are not snapshots)."""
        r = _resolve(resource)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, r.selectable_fields)
        if limit < 0:
            raise BadRequestError(f"limit must be >= 0, not {limit}")
        start_after, token_rv = _parse_continue(continue_token)
        prefix = r.prefix(namespace)
        if start_after and not start_after.startswith(prefix):
            raise BadRequestError("the continue token is not for this list")
        items: list[Obj] = []
        revision, more = 0, False
        while True:
            page = self._store_call(self.store.list, prefix, start_after=start_after, limit=limit)
            revision = token_rv or page.revision
            stopped_early = False
            for index, record in enumerate(page.records):
                start_after = record.key
                obj = decode(record.value, record.mod_revision)
                if labels.matches(meta(obj).get("labels")) and fields.matches(
                    lambda f, o=obj: field_value(o, f)  # type: ignore[misc]
                ):
                    obj.pop("kind", None)
                    obj.pop("apiVersion", None)
                    items.append(obj)
                    if limit and len(items) >= limit:
                        stopped_early = index < len(page.records) - 1
                        break
            if limit and len(items) >= limit:
                more = stopped_early or page.more
                break
            if not page.more:
                break
        self._check_resource_version(resource_version, revision)
        list_meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if more:
            list_meta["continue"] = _make_continue(start_after, revision)
        return {
            "kind": f"{r.kind}List",
            "apiVersion": r.api_version,
            "metadata": list_meta,
            "items": items,
        }

    def watch(
        self,
        resource: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        allow_bookmarks: bool = False,
        send_initial_events: bool = False,
        timeout_seconds: float | None = None,
        bookmark_interval: float | None = None,
    ) -> ApiWatch:
        """Watch a resource (see ``watch.ApiWatch``); close the watch when done."""
        r = _resolve(resource)
        return open_watch(
            self.store,
            r,
            namespace=namespace,
            labels=parse_label_selector(label_selector),
            fields=parse_field_selector(field_selector, r.selectable_fields),
            resource_version=resource_version,
            allow_bookmarks=allow_bookmarks,
            send_initial_events=send_initial_events,
            timeout_seconds=timeout_seconds,
            bookmark_interval=bookmark_interval or self.bookmark_interval,
        )

    def _check_resource_version(self, requested: str, current: int) -> None:
        if requested in ("", "0"):
            return
        try:
            wanted = int(requested)
        except ValueError:
            raise BadRequestError(f'invalid resource version "{requested}"') from None
        if wanted > current:
            raise ServerTimeoutError(
                f"Too large resource version: {wanted}, current: {current}",
                details={
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )

    # -- create --------------------------------------------------------------------------

    def create(
        self,
        resource: ResourceRef,
        body: Any,
        *,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        r = _resolve(resource)
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

    # -- update --------------------------------------------------------------------------

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
        r = _resolve(resource)
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
        expected = _parse_rv(metadata.get("resourceVersion", ""))
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
        r = _resolve(resource)
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
                expected = _parse_rv(str(rv))

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
        for _ in range(_RETRIES):
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

    # -- delete --------------------------------------------------------------------------

    def delete(
        self,
        resource: ResourceRef,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        preconditions: dict[str, Any] | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> DeleteResult:
        """Delete now, or mark for deletion (``deletionTimestamp``) while finalizers remain.

        ``Orphan`` and ``Foreground`` add the ``orphan``/``foregroundDeletion`` finalizer
        that the garbage collector clears; ``Background`` (the default) deletes at once.
        """
        r = _resolve(resource)
        self._check_scope(r, namespace)
        if propagation_policy is not None and propagation_policy not in PROPAGATION_POLICIES:
            raise st.invalid(
                r,
                name,
                [
                    cause(
                        "propagationPolicy",
                        f'Unsupported value: "{propagation_policy}": supported values:'
                        ' "Orphan", "Background", "Foreground"',
                        "FieldValueNotSupported",
                    )
                ],
            )
        if grace_period_seconds is not None and grace_period_seconds < 0:
            grace_period_seconds = 0
        if r.kind == "Namespace" and name in IMMORTAL_NAMESPACES:
            raise st.forbidden(r, name, "this namespace may not be deleted")
        preconditions = preconditions or {}
        key = r.key(namespace, name)
        for _ in range(_RETRIES):
            record = self._store_call(self.store.get, key)
            if record is None:
                raise st.not_found(r, name)
            current = decode(record.value, record.mod_revision)
            current_meta = meta(current)
            if preconditions.get("uid") and preconditions["uid"] != current_meta.get("uid"):
                raise st.conflict(
                    r,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']},"
                    f" UID in object meta: {current_meta.get('uid')}",
                )
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != current_meta["resourceVersion"]
            ):
                raise st.conflict(
                    r,
                    name,
                    "Precondition failed: ResourceVersion in precondition:"
                    f" {preconditions['resourceVersion']},"
                    f" ResourceVersion in meta: {current_meta['resourceVersion']}",
                )
            new = copy.deepcopy(current)
            new_meta = meta(new)
            finalizers = list(new_meta.get("finalizers") or [])
            if r.kind != "Namespace":
                if propagation_policy == "Orphan" and ORPHAN not in finalizers:
                    finalizers.append(ORPHAN)
                if propagation_policy == "Foreground" and FOREGROUND not in finalizers:
                    finalizers.append(FOREGROUND)
            graceful = self._grace(r, current, grace_period_seconds)
            pending = bool(finalizers) or graceful is not None or r.kind == "Namespace"
            if r.kind == "Namespace":
                pending = bool(finalizers) or bool((new.get("spec") or {}).get("finalizers"))
            if not pending:
                if dry_run:
                    return DeleteResult(current, True)
                try:
                    gone = self.store.delete(key, record.mod_revision)
                except RevisionConflictError:
                    continue
                except KeyNotFoundError:
                    raise st.not_found(r, name) from None
                except StoreError as exc:
                    raise ServiceUnavailableError(str(exc)) from exc
                meta(current)["resourceVersion"] = str(gone.mod_revision)
                return DeleteResult(current, True)
            now = self.clock()
            if finalizers:
                new_meta["finalizers"] = finalizers
            if "deletionTimestamp" not in new_meta:
                new_meta["deletionTimestamp"] = format_time(now + (graceful or 0))
                new_meta["deletionGracePeriodSeconds"] = graceful or 0
                new_meta["generation"] = int(new_meta.get("generation", 1)) + 1
            elif graceful is not None and graceful < int(
                new_meta.get("deletionGracePeriodSeconds", 0)
            ):
                new_meta["deletionTimestamp"] = format_time(now + graceful)
                new_meta["deletionGracePeriodSeconds"] = graceful
            if r.kind == "Namespace":
                new.setdefault("status", {})["phase"] = "Terminating"
            if graceful == 0 and not finalizers and r.kind != "Namespace":
                # An already-terminating pod deleted with no grace: it goes now.
                new_meta["deletionGracePeriodSeconds"] = 0
            if new == current:
                return DeleteResult(current, False)
            if dry_run:
                return DeleteResult(new, False)
            try:
                stored = self.store.update(key, encode(new), record.mod_revision)
            except RevisionConflictError:
                continue
            except KeyNotFoundError:
                raise st.not_found(r, name) from None
            except StoreError as exc:
                raise ServiceUnavailableError(str(exc)) from exc
            new_meta["resourceVersion"] = str(stored.mod_revision)
            if self._ready_to_go(r, new):
                self._remove(r, namespace, name, stored.mod_revision)
                return DeleteResult(new, True)
            return DeleteResult(new, False)
        raise st.conflict(r, name, "too many concurrent writers; try again")

    def _grace(self, r: Resource, pod: Obj, requested: int | None) -> int | None:
        """Seconds of graceful termination for a pod bound to a node, else ``None``."""
        if r.kind != "Pod":
            return None
        spec = pod.get("spec") or {}
        if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            return None
        grace = (
            requested
            if requested is not None
            else int(spec.get("terminationGracePeriodSeconds", 30))
        )
        if grace == 0 and "deletionTimestamp" not in meta(pod):
            return None  # force deletion of a pod that was not terminating: immediate
        return grace

    def _ready_to_go(self, r: Resource, obj: Obj) -> bool:
        """Marked for deletion, and nothing (finalizer, grace period) holds it any longer."""
        m = meta(obj)
        if "deletionTimestamp" not in m or m.get("finalizers"):
            return False
        if r.kind == "Namespace":
            return not (obj.get("spec") or {}).get("finalizers")
        # A pod in graceful termination goes when its node agent (or the reaper) says so.
        return not (r.kind == "Pod" and int(m.get("deletionGracePeriodSeconds", 0)) > 0)

    def _remove(self, r: Resource, namespace: str | None, name: str, revision: int) -> None:
        try:
            self.store.delete(r.key(namespace, name), revision)
        except (RevisionConflictError, KeyNotFoundError):
            pass  # someone else changed or removed it first: they decide what happens now
        except StoreError as exc:
            raise ServiceUnavailableError(str(exc)) from exc

    # -- subresources --------------------------------------------------------------------

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

    def get_scale(self, resource: ResourceRef, name: str, *, namespace: str | None = None) -> Obj:
        r = _resolve(resource)
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
        r = _resolve(resource)
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
            expected = _parse_rv(str(rv)) if rv else None
        updated = self._update(r, namespace, name, mutate, expected=expected, dry_run=dry_run)
        return _scale_of(r, updated)

    # -- helpers -------------------------------------------------------------------------

    def _decode_body(self, r: Resource, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise BadRequestError(f"a {r.kind} must be a JSON object, not {type(body).__name__}")
        obj = copy.deepcopy(body)
        check_types(obj, r.kind)
        self._check_kind(r, obj)
        obj["kind"], obj["apiVersion"] = r.kind, r.api_version
        meta(obj)
        return obj

    @staticmethod
    def _check_kind(r: Resource, obj: Obj) -> None:
        kind, version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != r.kind:
            raise BadRequestError(
                f"the kind in the body ({kind}) does not match the expected kind ({r.kind})"
            )
        if version and version != r.api_version:
            raise BadRequestError(
                f"the API version in the data ({version}) does not match"
                f" the expected API version ({r.api_version})"
            )

    @staticmethod
    def _check_scope(r: Resource, namespace: str | None) -> None:
        if r.namespaced and not namespace:
            raise NotFoundError(f"{r.qualified} must be addressed in a namespace")
        if not r.namespaced and namespace:
            raise NotFoundError(f"{r.qualified} is not namespaced")

    @staticmethod
    def _check_body_namespace(r: Resource, metadata: Obj, namespace: str | None) -> None:
        body_ns = metadata.get("namespace")
        if r.namespaced and body_ns and body_ns != namespace:
            raise BadRequestError(
                "the namespace of the provided object does not match"
                " the namespace sent on the request"
            )

    @staticmethod
    def _check_subresource(r: Resource, sub: str, allowed: tuple[str, ...]) -> None:
        if sub and (sub not in r.subresources or sub not in allowed):
            raise NotFoundError(
                f"the server could not find the requested resource ({r.plural}/{sub})"
            )

    def _check_namespace_open(self, r: Resource, namespace: str, name: str) -> None:
        ns = find_resource("namespaces")
        record = self._store_call(self.store.get, ns.key(None, namespace))
        if record is None:
            raise st.not_found(ns, namespace)
        if "deletionTimestamp" in (json.loads(record.value).get("metadata") or {}):
            raise ForbiddenError(
                f'{r.qualified} "{name}" is forbidden: unable to create new content'
                f" in namespace {namespace} because it is being terminated",
                details={
                    "name": name,
                    "kind": r.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    @staticmethod
    def _store_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            raise ServiceUnavailableError(str(exc)) from exc


def _resolve(resource: ResourceRef) -> Resource:
    return resource if isinstance(resource, Resource) else find_resource(resource)


def _parse_rv(text: str) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f'invalid resource version "{text}"') from None
    if value <= 0:
        raise BadRequestError(f'invalid resource version "{text}"')
    return value


def _make_continue(key: str, revision: int) -> str:
    raw = json.dumps({"v": 1, "rv": revision, "start": key}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _parse_continue(token: str) -> tuple[str, int]:
    if not token:
        return "", 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequestError("continue key is not valid") from None


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
