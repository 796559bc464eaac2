"""The scheduling framework: extension points, statuses, cycle state and one cycle.

A plugin is an object with a ``NAME`` and one or more extension-point methods; the
protocols below say exactly what each is called with. Per cycle (one pod):

1. ``pre_filter(state, pod, snapshot) -> Status``: look at the pod once and put what
   ``filter`` needs into ``state`` under the plugin's ``NAME``. ``Status.skip()`` means
   "my filter has nothing to say about this pod" (it is then not called); a failure makes
   the pod unschedulable at once.
2. ``filter(state, pod, node) -> Status | None`` per node: ``None`` when the pod fits,
   else an unschedulable ``Status`` whose reasons end up in the pod's message. Filters run
   in order and a node stops at its first failure. Nodes are visited round-robin from
   where the last cycle stopped, until ``num_feasible_nodes_to_find`` fit (kube-scheduler's
   ``percentageOfNodesToScore``).
3. ``score(state, pod, nodes) -> list[int]``: one score in ``0..MAX_NODE_SCORE`` per
   feasible node, in order, multiplied by the plugin's weight and summed; the best node
   wins, ties at random. (Scoring takes the whole list, unlike kube-scheduler's per-node
   ``Score``: in Python a call per node and plugin costs more than the arithmetic, and
   kube-scheduler spreads that loop over 16 goroutines instead.)
4. ``bind(state, pod, node_name) -> Status``: the first binder not answering ``skip``
   writes the binding.

The framework never mutates the pod or the nodes; ``Framework.schedule`` returns a
``ScheduleResult`` and ``fit_error_message`` renders kube-scheduler's "0/3 nodes are
available: ..." message from the reasons it counted.
"""

from __future__ import annotations

import enum
import itertools
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .cache import NodeInfo, PodInfo
from .errors import PluginError

__all__ = [
    "MAX_NODE_SCORE",
    "BindPlugin",
    "Code",
    "CycleState",
    "FilterPlugin",
    "Framework",
    "PreFilterPlugin",
    "ScheduleResult",
    "ScorePlugin",
    "Snapshot",
    "Status",
    "fit_error_message",
    "num_feasible_nodes_to_find",
]

MAX_NODE_SCORE = 100
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3  # no cluster change short of editing the pod helps
    SKIP = 4


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's answer: a code, the reasons shown to users, and who gave it."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str, plugin: str = "", resolvable: bool = True) -> Status:
        code = Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        return cls(code, reasons, plugin)

    @classmethod
    def skip(cls) -> Status:
        return _SKIP

    @classmethod
    def error(cls, message: str, *, plugin: str = "") -> Status:
        return cls(Code.ERROR, (message,), plugin)

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)


_SKIP = Status(Code.SKIP)
SUCCESS = Status()


class CycleState:
    """Data one scheduling cycle computed once, keyed by plugin name."""

    __slots__ = ("_data", "skipped")

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skipped: set[str] = set()  # plugins whose filter is not run this cycle

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def read(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise PluginError(f"no cycle state under {key!r}: did its pre_filter run?") from None


class Snapshot(Protocol):
    """The cluster as a cycle sees it (the scheduler's ``Cache``, read under its lock)."""

    nodes: list[NodeInfo]
    tainted_nodes: int
    blocked_nodes: int

    def get(self, name: str) -> NodeInfo | None: ...

    def __len__(self) -> int: ...


@runtime_checkable
class PreFilterPlugin(Protocol):
    NAME: str

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status: ...


@runtime_checkable
class FilterPlugin(Protocol):
    NAME: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    NAME: str

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]: ...


@runtime_checkable
class BindPlugin(Protocol):
    NAME: str

    def bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status: ...


@dataclass
class ScheduleResult:
    """Where the pod goes (``node``), or why it cannot go anywhere (``reasons``)."""

    node: str | None
    evaluated: int = 0
    feasible: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    total_nodes: int = 0
    pre_filter_message: str = ""

    def message(self) -> str:
        return fit_error_message(self.total_nodes, self.reasons, self.pre_filter_message)


def fit_error_message(total: int, reasons: Mapping[str, int], pre_filter: str = "") -> str:
    """kube-scheduler's ``FitError``: ``0/3 nodes are available: 1 Insufficient cpu, ...``."""
    message = f"0/{total} nodes are available:"
    if pre_filter:
        return f"{message} {pre_filter}."
    histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"{message} {', '.join(histogram)}." if histogram else message


def num_feasible_nodes_to_find(total: int, percentage: int = 0) -> int:
    """How many feasible nodes to look for before scoring (kube-scheduler's formula)."""
    if total < MIN_FEASIBLE_NODES_TO_FIND:
        return total
    if percentage <= 0:
        percentage = max(50 - total // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(total * min(percentage, 100) // 100, MIN_FEASIBLE_NODES_TO_FIND)


class Framework:
    """Runs the plugins of one profile over a snapshot (see the module docstring)."""

    def __init__(
        self,
        plugins: Sequence[object],
        *,
        weights: Mapping[str, int] | None = None,
        percentage_of_nodes_to_score: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        names = [getattr(p, "NAME", None) for p in plugins]
        if None in names or len(set(names)) != len(names):
            raise PluginError(f"every plugin needs a distinct NAME, got {names}")
        weights = dict(weights or {})
        self.pre_filters = [p for p in plugins if isinstance(p, PreFilterPlugin)]
        self.filters = [p for p in plugins if isinstance(p, FilterPlugin)]
        self.scorers = [(p, weights.pop(p.NAME, 1)) for p in plugins if isinstance(p, ScorePlugin)]
        self.binders = [p for p in plugins if isinstance(p, BindPlugin)]
        if weights:
            raise PluginError(f"weights given for plugins that do not score: {sorted(weights)}")
        if not self.binders:
            raise PluginError("a framework needs a bind plugin (DefaultBinder)")
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self._next_start = 0

    def schedule(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> ScheduleResult:
        """One scheduling cycle: the node ``pod`` should go to, or why there is none."""
        total = len(snapshot)
        result = ScheduleResult(None, total_nodes=total)
        if total == 0:
            result.pre_filter_message = "no nodes available to schedule pods"
            return result
        for plugin in self.pre_filters:
            status = plugin.pre_filter(state, pod, snapshot)
            if status.code is Code.SKIP:
                state.skipped.add(plugin.NAME)
            elif status.code is Code.ERROR:  # not the pod's fault: retried with backoff
                raise PluginError(f"{plugin.NAME} pre_filter failed: {'; '.join(status.reasons)}")
            elif not status.ok:
                result.pre_filter_message = "; ".join(status.reasons)
                return result
        feasible = self._find_feasible(state, pod, snapshot.nodes, result)
        result.feasible = len(feasible)
        if not feasible:
            return result
        if len(feasible) == 1 or not self.scorers:
            result.node = feasible[0].name
            return result
        result.node = self._select(self._score(state, pod, feasible), feasible)
        return result

    def _find_feasible(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], result: ScheduleResult
    ) -> list[NodeInfo]:
        filters = [p.filter for p in self.filters if p.NAME not in state.skipped]
        total = len(nodes)
        wanted = num_feasible_nodes_to_find(total, self.percentage)
        start = self._next_start % total if total else 0
        feasible: list[NodeInfo] = []
        reasons = result.reasons
        evaluated = 0
        for node in itertools.chain(
            itertools.islice(nodes, start, None), itertools.islice(nodes, start)
        ):
            evaluated += 1
            for check in filters:
                status = check(state, pod, node)
                if status is not None:
                    for reason in status.reasons:
                        reasons[reason] += 1
                    break
            else:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
        result.evaluated = evaluated
        self._next_start = start + evaluated
        return feasible

    def _score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo]) -> list[int]:
        totals = [0] * len(feasible)
        for plugin, weight in self.scorers:
            scores = plugin.score(state, pod, feasible)
            if len(scores) != len(feasible):
                raise PluginError(f"{plugin.NAME} scored {len(scores)} of {len(feasible)} nodes")
            totals = [t + s * weight for t, s in zip(totals, scores, strict=True)]
        return totals

    def _select(self, totals: list[int], feasible: list[NodeInfo]) -> str:
        best = max(totals)
        winners = [i for i, t in enumerate(totals) if t == best]
        return feasible[winners[0] if len(winners) == 1 else self.rng.choice(winners)].name

    def bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        for binder in self.binders:
            status = binder.bind(state, pod, node_name)
            if status.code is not Code.SKIP:
                return status
        return Status.error("no bind plugin bound the pod")
