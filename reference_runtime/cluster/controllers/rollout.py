"""The arithmetic of a Deployment rollout, over plain numbers (table-tested).

``SetCount`` is what the Deployment controller knows about one of its ReplicaSets:
``replicas`` (its spec), ``active`` (its pods not being deleted) and ``available``. A set
may have more active pods than its spec while it deletes the surplus, so "how many pods
can there be" counts ``max(replicas, active)`` per set, and "how many will stay available"
counts ``min(available, replicas)``: the two bounds the rolling update keeps,

    pods     <= desired + max_surge
    available >= desired - max_unavailable

hold even while the ReplicaSet controllers are still catching up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .pods import scaled_value

__all__ = ["SetCount", "fenceposts", "new_set_replicas", "old_sets_scale_down", "recreate_done"]


@dataclass(frozen=True)
class SetCount:
    name: str
    replicas: int
    active: int = 0
    available: int = 0

    @property
    def ceiling(self) -> int:
        """Pods this set can have: its spec, or more while it deletes the surplus."""
        return max(self.replicas, self.active)

    @property
    def keeps_available(self) -> int:
        """Available pods this set keeps once it has converged on its spec."""
        return min(self.available, self.replicas)


def fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """``(surge, unavailable)`` as pod counts: surge rounds up, unavailable down, and both
    zero becomes ``(0, 1)`` so a rollout can always move (Kubernetes' ResolveFenceposts)."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return max(surge, 0), max(unavailable, 0)


def new_set_replicas(desired: int, surge: int, new: SetCount, all_sets: Sequence[SetCount]) -> int:
    """The new ReplicaSet's next size: up while the total stays within ``desired + surge``,
    never beyond ``desired``."""
    if new.replicas >= desired:
        return desired
    room = desired + surge - sum(s.ceiling for s in all_sets)
    if room <= 0:
        return new.replicas
    return min(new.replicas + room, desired)


def old_sets_scale_down(
    desired: int, unavailable: int, new: SetCount, old_sets: Sequence[SetCount]
) -> dict[str, int]:
    """New sizes for old ReplicaSets (oldest first in ``old_sets``) that keep at least
    ``desired - unavailable`` pods available: unhealthy pods go first, then healthy ones
    as far as the new set's available pods allow."""
    min_available = desired - unavailable
    sizes = {s.name: s.replicas for s in old_sets}
    all_pods = new.replicas + sum(s.replicas for s in old_sets)
    new_unavailable = new.replicas - new.keeps_available
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return {}
    for s in old_sets:  # unhealthy pods of old sets: they count for nothing
        unhealthy = min(s.replicas - s.keeps_available, budget)
        if unhealthy > 0:
            sizes[s.name] -= unhealthy
            budget -= unhealthy
    available = new.keeps_available + sum(min(s.available, sizes[s.name]) for s in old_sets)
    spare = available - min_available
    for s in old_sets:
        if spare <= 0:
            break
        down = min(sizes[s.name], spare)
        sizes[s.name] -= down
        spare -= down
    return {name: size for name, size in sizes.items() if size != _replicas(old_sets, name)}


def _replicas(sets: Sequence[SetCount], name: str) -> int:
    return next(s.replicas for s in sets if s.name == name)


def recreate_done(old_sets: Sequence[SetCount], old_pods: int) -> bool:
    """Whether ``Recreate`` may start the new pods: old sets at zero, their pods all gone."""
    return all(s.replicas == 0 for s in old_sets) and old_pods == 0
