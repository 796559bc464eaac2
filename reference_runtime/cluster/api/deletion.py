"""The ``Registry``'s deletion: preconditions, graceful pod termination, finalizers,
propagation policies and the namespaces that may not be deleted."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..errors import (
    KeyNotFoundError,
    RevisionConflictError,
    ServiceUnavailableError,
    StoreError,
)
from . import status as st
from .objects import Obj, decode, encode, format_time, meta
from .registry_base import RETRIES, RegistryBase, ResourceRef, resolve
from .resources import Resource
from .validation import cause

# Finalizers the API server itself acts on.
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
NAMESPACE_FINALIZER = "kubernetes"
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


@dataclass
class DeleteResult:
    """The object as deletion left it, and whether it is gone (else only marked)."""

    object: Obj
    deleted: bool


class RegistryDeletion(RegistryBase):
    """delete, and when an object marked for deletion goes."""

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
        r = resolve(resource)
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
        for _ in range(RETRIES):
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
