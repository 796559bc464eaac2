"""Adoption and release: which objects a controller owns (``claim``).

Like Kubernetes' ``ControllerRefManager``: an object whose labels match the owner's
selector and that has no controller is adopted (a controller reference is added); an
object the owner controls whose labels no longer match is released (the reference is
removed). Both writes carry the object's ``resourceVersion``, so a change made meanwhile
wins and the next reconcile decides again.
"""

from __future__ import annotations

import logging
from typing import Any

from ..api.objects import Obj, meta
from ..api.patch import MERGE_PATCH
from ..api.registry import Registry
from ..api.selectors import LabelSelector
from ..errors import ConflictError, InvalidError, NotFoundError
from .pods import controller_ref

__all__ = ["claim"]

log = logging.getLogger(__name__)


def claim(
    registry: Registry,
    resource: str,
    owner: Obj,
    ref: dict[str, Any],
    selector: LabelSelector,
    objects: list[Obj],
) -> list[Obj]:
    """The objects ``owner`` controls after adopting and releasing (see the module doc)."""
    owned: list[Obj] = []
    owner_going = "deletionTimestamp" in meta(owner)
    for obj in objects:
        m = meta(obj)
        current = controller_ref(obj)
        matches = selector.matches(m.get("labels"))
        if current is None:
            if matches and not owner_going and "deletionTimestamp" not in m:
                refs = [*(m.get("ownerReferences") or []), ref]
                adopted = _set_refs(registry, resource, obj, refs)
                if adopted is not None:
                    owned.append(adopted)
        elif current.get("uid") == ref["uid"]:
            if matches:
                owned.append(obj)
            elif "deletionTimestamp" not in m:
                refs = [r for r in m.get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
                _set_refs(registry, resource, obj, refs)
    return owned


def _set_refs(
    registry: Registry, resource: str, obj: Obj, refs: list[dict[str, Any]]
) -> Obj | None:
    m = meta(obj)
    patch = {"metadata": {"resourceVersion": m["resourceVersion"], "ownerReferences": refs or None}}
    try:
        return registry.patch(
            resource, m["name"], patch, patch_type=MERGE_PATCH, namespace=m.get("namespace")
        )
    except (ConflictError, NotFoundError, InvalidError) as exc:
        log.debug("cannot change the owners of %s %s: %s", resource, m["name"], exc)
        return None  # changed or gone meanwhile: its watch event brings us back
