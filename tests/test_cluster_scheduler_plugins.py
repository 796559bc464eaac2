"""The scheduler's parts without a server: quantities, plugins, framework, queue, cache.

Table tests per plugin (each plugin's pure ``fits``/``score`` helper and its extension
points agree), and a property test of the whole framework over generated clusters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_runtime.cluster.scheduler import (
    Cache,
    CycleState,
    Framework,
    NodeInfo,
    PodInfo,
    QuantityError,
    SchedulingQueue,
    Status,
    fit_error_message,
    milli_value,
    num_feasible_nodes_to_find,
    pod_non_zero_requests,
    pod_requests,
    value,
)
from reference_runtime.cluster.scheduler.plugins import (
    DEFAULT_WEIGHTS,
    BalancedAllocation,
    LeastAllocated,
    NodeName,
    NodeReady,
    NodeResourcesFit,
    NodeSelector,
    NodeUnschedulable,
    TaintToleration,
    balanced_allocation,
    least_allocated,
    node_name,
    node_ready,
    node_resources_fit,
    node_selector,
    node_unschedulable,
    taint_toleration,
)

# -- builders ------------------------------------------------------------------------------


def make_node(
    name: str = "n1",
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: str = "True",
    unschedulable: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def make_pod(
    name: str = "p",
    *,
    cpu: str | None = None,
    memory: str | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    node_name: str = "",
) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "image": "i", "resources": {"requests": requests}}]
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec}


def node_info(node: dict[str, Any], *bound: dict[str, Any]) -> NodeInfo:
    cache = Cache()
    cache.update_node(node)
    for pod in bound:
        pod = {**pod, "spec": {**pod["spec"], "nodeName": node["metadata"]["name"]}}
        cache.add_pod(PodInfo.from_pod(pod))
    info = cache.get(node["metadata"]["name"])
    assert info is not None
    return info


def run_filter(plugin: Any, pod: dict[str, Any], node: NodeInfo) -> Status | None:
    """Run ``plugin``'s pre_filter (against a one-node snapshot) and filter."""
    cache = Cache()
    cache.update_node(node.node or {})
    state = CycleState()
    info = PodInfo.from_pod(pod)
    status = plugin.pre_filter(state, info, cache) if hasattr(plugin, "pre_filter") else Status()
    if status.code.name == "SKIP":
        return None
    assert status.ok, status
    result: Status | None = plugin.filter(state, info, node)
    return result


# -- quantities and requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [
        ("100m", 100, 1),
        ("1", 1000, 1),
        ("2.5", 2500, 3),
        ("0.1", 100, 1),
        ("1Ki", 1024000, 1024),
        ("512Mi", 512 * 2**20 * 1000, 512 * 2**20),
        ("1Gi", 2**30 * 1000, 2**30),
        ("1G", 10**12, 10**9),
        ("1k", 10**6, 1000),
        ("1e3", 10**6, 1000),
        ("1E-3", 1, 1),
        ("1.5Gi", 3 * 2**29 * 1000, 3 * 2**29),
        ("250u", 1, 1),
        (3, 3000, 3),
        (0.5, 500, 1),
    ],
)
def test_quantities(text: Any, milli: int, whole: int) -> None:
    assert milli_value(text) == milli
    assert value(text) == whole


@pytest.mark.parametrize("bad", ["", "1Kb", "m", "1.2.3", "abc", "--1", True, None, "1 Gi"])
def test_bad_quantities(bad: Any) -> None:
    with pytest.raises(QuantityError):
        milli_value(bad)


def test_pod_requests_sum_containers_max_init_and_fall_back_to_limits() -> None:
    pod = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                {"resources": {"limits": {"cpu": "200m", "memory": "1Gi"}}},
                {},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
            "overhead": {"cpu": "10m"},
        }
    }
    asked = pod_requests(pod)
    assert (asked.cpu, asked.memory, asked.pods) == (1010, 2 * 2**30, 1)
    non_zero = pod_non_zero_requests({"spec": {"containers": [{}, {}]}})
    assert (non_zero.cpu, non_zero.memory) == (200, 400 * 2**20)


# -- filters -------------------------------------------------------------------------------

FIT_CASES = [
    # (requests of the new pod, requests of pods already there, node, reasons)
    (("1", "1Gi"), [], make_node(), []),
    (("4", "8Gi"), [], make_node(), []),
    (("4001m", None), [], make_node(), ["Insufficient cpu"]),
    (("3", None), [("1500m", None)], make_node(), ["Insufficient cpu"]),
    ((None, "5Gi"), [(None, "4Gi")], make_node(), ["Insufficient memory"]),
    (("5", "9Gi"), [], make_node(), ["Insufficient cpu", "Insufficient memory"]),
    ((None, None), [(None, None)], make_node(pods="1"), ["Too many pods"]),
    ((None, None), [("8", "16Gi")], make_node(), []),  # asks nothing: only the pod count
    (("100m", None), [], make_node(cpu="0"), ["Insufficient cpu"]),
]


@pytest.mark.parametrize(("asked", "there", "node", "reasons"), FIT_CASES)
def test_node_resources_fit(
    asked: tuple[str | None, str | None],
    there: list[tuple[str | None, str | None]],
    node: dict[str, Any],
    reasons: list[str],
) -> None:
    bound = [make_pod(f"b{i}", cpu=c, memory=m) for i, (c, m) in enumerate(there)]
    info = node_info(node, *bound)
    pod = make_pod(cpu=asked[0], memory=asked[1])
    assert node_resources_fit.insufficient(pod_requests(pod), info) == reasons
    assert node_resources_fit.fits(PodInfo.from_pod(pod), info) is (not reasons)
    status = run_filter(NodeResourcesFit(), pod, info)
    assert (list(status.reasons) if status else []) == reasons


def test_node_resources_fit_rejects_malformed_requests_in_pre_filter() -> None:
    state = CycleState()
    status = NodeResourcesFit().pre_filter(state, PodInfo.from_pod(make_pod(cpu="lots")), Cache())
    assert status.rejected and "invalid resource request" in status.reasons[0]


@pytest.mark.parametrize(
    ("wanted", "node", "fits"),
    [("", "n1", True), ("n1", "n1", True), ("n2", "n1", False)],
)
def test_node_name(wanted: str, node: str, fits: bool) -> None:
    info = node_info(make_node(node))
    pod = make_pod(node_name=wanted)
    assert node_name.fits(PodInfo.from_pod(pod), info) is fits
    status = run_filter(NodeName(), pod, info)
    assert (status is None) is fits
    if status is not None:
        assert status.reasons == (node_name.REASON,)


@pytest.mark.parametrize(
    ("selector", "labels", "fits"),
    [
        ({}, {}, True),
        ({"disk": "ssd"}, {"disk": "ssd", "zone": "a"}, True),
        ({"disk": "ssd"}, {"disk": "hdd"}, False),
        ({"disk": "ssd"}, {}, False),
        ({"disk": "ssd", "zone": "a"}, {"disk": "ssd", "zone": "b"}, False),
        ({"disk": ""}, {"disk": ""}, True),
    ],
)
def test_node_selector(selector: dict[str, str], labels: dict[str, str], fits: bool) -> None:
    info = node_info(make_node(labels=labels))
    pod = make_pod(node_selector=selector)
    assert node_selector.fits(PodInfo.from_pod(pod), info) is fits
    status = run_filter(NodeSelector(), pod, info)
    assert (status is None) is fits
    if status is not None:
        assert status.reasons == ("node(s) didn't match Pod's node affinity/selector",)


NO_SCHEDULE = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
NO_EXECUTE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
PREFER = {"key": "soft", "value": "x", "effect": "PreferNoSchedule"}


@pytest.mark.parametrize(
    ("taints", "tolerations", "fits"),
    [
        ([], [], True),
        ([PREFER], [], True),  # only NoSchedule and NoExecute filter
        ([NO_SCHEDULE], [], False),
        ([NO_SCHEDULE], [{"key": "dedicated", "operator": "Equal", "value": "gpu"}], True),
        ([NO_SCHEDULE], [{"key": "dedicated", "value": "gpu"}], True),  # Equal is the default
        ([NO_SCHEDULE], [{"key": "dedicated", "operator": "Equal", "value": "cpu"}], False),
        ([NO_SCHEDULE], [{"key": "dedicated", "operator": "Exists"}], True),
        ([NO_SCHEDULE], [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], False),
        ([NO_SCHEDULE], [{"operator": "Exists"}], True),  # empty key + Exists: everything
        ([NO_SCHEDULE, NO_EXECUTE], [{"key": "dedicated", "operator": "Exists"}], False),
        ([NO_EXECUTE], [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}], True),
    ],
)
def test_taint_toleration(
    taints: list[dict[str, str]], tolerations: list[dict[str, Any]], fits: bool
) -> None:
    info = node_info(make_node(taints=taints))
    pod = make_pod(tolerations=tolerations)
    assert taint_toleration.fits(PodInfo.from_pod(pod), info) is fits
    status = run_filter(TaintToleration(), pod, info)
    assert (status is None) is fits
    if status is not None:
        assert status.reasons[0].startswith("node(s) had untolerated taint {")


def test_taint_reason_reads_like_kube_scheduler() -> None:
    status = run_filter(TaintToleration(), make_pod(), node_info(make_node(taints=[NO_SCHEDULE])))
    assert status is not None and status.reasons == (
        "node(s) had untolerated taint {dedicated: gpu}",
    )


@pytest.mark.parametrize(
    ("ready", "unschedulable", "tolerations", "ready_fits", "cordon_fits"),
    [
        ("True", False, [], True, True),
        ("False", False, [], False, True),
        ("Unknown", False, [], False, True),
        ("True", True, [], True, False),
        (
            "True",
            True,
            [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}],
            True,
            True,
        ),
    ],
)
def test_node_ready_and_unschedulable(
    ready: str,
    unschedulable: bool,
    tolerations: list[dict[str, Any]],
    ready_fits: bool,
    cordon_fits: bool,
) -> None:
    info = node_info(make_node(ready=ready, unschedulable=unschedulable))
    pod = make_pod(tolerations=tolerations)
    assert node_ready.fits(PodInfo.from_pod(pod), info) is ready_fits
    assert node_unschedulable.fits(PodInfo.from_pod(pod), info) is cordon_fits
    assert (run_filter(NodeReady(), pod, info) is None) is ready_fits
    assert (run_filter(NodeUnschedulable(), pod, info) is None) is cordon_fits


def test_filters_skip_when_no_node_could_fail_them() -> None:
    cache = Cache()
    cache.update_node(make_node())
    pod = PodInfo.from_pod(make_pod())
    for plugin in (NodeName(), NodeSelector(), TaintToleration(), NodeReady(), NodeUnschedulable()):
        assert plugin.pre_filter(CycleState(), pod, cache).code.name == "SKIP", plugin.NAME


# -- scores --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "there", "least", "balanced"),
    [
        (("1", "2Gi"), ("1", "2Gi"), 50, 100),  # half of each used: (50+50)/2; balanced
        (("2", "1Gi"), None, 68, 81),  # cpu 50% left, memory 87.5% left; 0.5 vs 0.125 used
        (("4", "8Gi"), None, 0, 100),  # full
        (("100m", "100Mi"), ("4", "8Gi"), 0, 100),  # beyond allocatable scores 0 (capped)
    ],
)
def test_scores(
    asked: tuple[str, str], there: tuple[str, str] | None, least: int, balanced: int
) -> None:
    bound = [make_pod("b", cpu=there[0], memory=there[1])] if there else []
    info = node_info(make_node(cpu="4", memory="8Gi"), *bound)
    pod = PodInfo.from_pod(make_pod(cpu=asked[0], memory=asked[1]))
    assert least_allocated.score(pod, info) == least
    assert balanced_allocation.score(pod, info) == balanced
    assert LeastAllocated().score(CycleState(), pod, [info, info]) == [least, least]
    assert BalancedAllocation().score(CycleState(), pod, [info]) == [balanced]


def test_least_allocated_counts_best_effort_pods_as_non_zero() -> None:
    empty = node_info(make_node("a", cpu="1", memory="1Gi"))
    busy = node_info(make_node("b", cpu="1", memory="1Gi"), *[make_pod(f"x{i}") for i in range(4)])
    pod = PodInfo.from_pod(make_pod())
    assert least_allocated.score(pod, empty) > least_allocated.score(pod, busy)


# -- framework -----------------------------------------------------------------------------


class RecordingBinder:
    NAME = "RecordingBinder"

    def __init__(self) -> None:
        self.bound: list[tuple[str, str]] = []

    def bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status:
        self.bound.append((pod.key[1], node_name))
        return Status()


def framework(seed: int = 1, percentage: int = 0) -> Framework:
    import random

    from reference_runtime.cluster.scheduler.plugins import default_plugins

    everything = default_plugins(None)  # type: ignore[arg-type]  # no registry: never binds
    plugins = [p for p in everything if getattr(p, "NAME", "") != "DefaultBinder"]
    return Framework(
        [*plugins, RecordingBinder()],
        weights=DEFAULT_WEIGHTS,
        rng=random.Random(seed),
        percentage_of_nodes_to_score=percentage,
    )


def test_fit_error_message_is_kube_schedulers() -> None:
    cache = Cache()
    cache.update_node(make_node("a", cpu="1"))
    cache.update_node(make_node("b", cpu="1500m", labels={"disk": "hdd"}))
    cache.update_node(make_node("c"))
    busy = make_pod("x", cpu="3", node_name="c")
    cache.add_pod(PodInfo.from_pod(busy))
    result = framework().schedule(CycleState(), PodInfo.from_pod(make_pod(cpu="2")), cache)
    assert result.node is None
    assert result.message() == "0/3 nodes are available: 3 Insufficient cpu."
    selective = PodInfo.from_pod(make_pod(cpu="2", node_selector={"disk": "hdd"}))
    assert framework().schedule(CycleState(), selective, cache).message() == (
        "0/3 nodes are available: 1 Insufficient cpu,"
        " 2 node(s) didn't match Pod's node affinity/selector."
    )
    assert fit_error_message(2, Counter({"b": 1, "a": 1, "c": 2})) == (
        "0/2 nodes are available: 1 a, 1 b, 2 c."
    )
    assert framework().schedule(CycleState(), selective, Cache()).message() == (
        "0/0 nodes are available: no nodes available to schedule pods."
    )


@pytest.mark.parametrize(
    ("total", "percentage", "wanted"),
    [
        (3, 0, 3),
        (99, 0, 99),
        (100, 0, 100),
        (1000, 0, 420),
        (5000, 0, 500),
        (6000, 0, 300),
        (10000, 0, 500),
        (5000, 50, 2500),
        (200, 10, 100),
        (5000, 100, 5000),
    ],
)
def test_num_feasible_nodes_to_find(total: int, percentage: int, wanted: int) -> None:
    assert num_feasible_nodes_to_find(total, percentage) == wanted


def test_framework_spreads_and_rotates_over_nodes() -> None:
    cache = Cache()
    for i in range(4):
        cache.update_node(make_node(f"n{i}"))
    fw = framework()
    placed: Counter[str] = Counter()
    for i in range(8):
        pod = PodInfo.from_pod(make_pod(f"p{i}", cpu="500m", memory="1Gi"))
        result = fw.schedule(CycleState(), pod, cache)
        assert result.node is not None
        cache.assume(pod, result.node)
        placed[result.node] += 1
    assert sorted(placed.values()) == [2, 2, 2, 2]  # LeastAllocated spreads evenly


def test_framework_needs_distinct_names_and_a_binder() -> None:
    from reference_runtime.cluster.scheduler import PluginError

    with pytest.raises(PluginError, match="bind plugin"):
        Framework([NodeName()])
    with pytest.raises(PluginError, match="distinct NAME"):
        Framework([NodeName(), NodeName(), RecordingBinder()])
    with pytest.raises(PluginError, match="do not score"):
        Framework([NodeName(), RecordingBinder()], weights={"NodeName": 2})


NODE_SPECS = st.fixed_dictionaries(
    {
        "cpu": st.sampled_from(["500m", "1", "2", "4"]),
        "memory": st.sampled_from(["512Mi", "1Gi", "4Gi"]),
        "pods": st.sampled_from(["2", "5", "110"]),
        "labels": st.sampled_from([{}, {"disk": "ssd"}, {"disk": "hdd"}]),
        "taints": st.sampled_from([[], [NO_SCHEDULE], [NO_EXECUTE]]),
        "ready": st.sampled_from(["True", "True", "True", "False"]),
    }
)
POD_SPECS = st.fixed_dictionaries(
    {
        "cpu": st.sampled_from([None, "100m", "250m", "1", "1500m"]),
        "memory": st.sampled_from([None, "100Mi", "600Mi", "1Gi"]),
        "node_selector": st.sampled_from([None, {"disk": "ssd"}]),
        "tolerations": st.sampled_from([None, [{"key": "dedicated", "operator": "Exists"}]]),
    }
)


@settings(max_examples=60, deadline=None)
@given(st.lists(NODE_SPECS, min_size=1, max_size=8), st.lists(POD_SPECS, max_size=30))
def test_framework_never_overcommits_and_only_gives_up_when_nothing_fits(
    nodes: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> None:
    cache = Cache()
    for i, spec in enumerate(nodes):
        cache.update_node(make_node(f"n{i}", **spec))
    fw = framework()
    for i, spec in enumerate(pods):
        pod = PodInfo.from_pod(make_pod(f"p{i}", **spec))
        checks = (
            node_ready,
            node_unschedulable,
            taint_toleration,
            node_selector,
            node_resources_fit,
        )
        fitting = [n.name for n in cache.nodes if all(c.fits(pod, n) for c in checks)]
        result = fw.schedule(CycleState(), pod, cache)
        if result.node is None:
            assert not fitting, f"{pod.key} fits {fitting} but was not placed: {result.message()}"
            assert result.message().startswith(f"0/{len(nodes)} nodes are available:")
            continue
        assert result.node in fitting
        cache.assume(pod, result.node)
    for info in cache.nodes:
        have, used = info.allocatable, info.requested
        assert used.cpu <= have.cpu and used.memory <= have.memory and used.pods <= have.pods
        for pod in info.pods.values():
            assert node_selector.fits(pod, info) and taint_toleration.fits(pod, info)


# -- queue and cache -----------------------------------------------------------------------


def test_queue_orders_backs_off_and_waits_for_cluster_changes() -> None:
    now = [100.0]
    queue = SchedulingQueue(initial_backoff=1.0, max_backoff=4.0, clock=lambda: now[0])
    low, high = PodInfo.from_pod(make_pod("low")), PodInfo.from_pod(make_pod("high"))
    high.pod["spec"]["priority"] = 10
    queue.add(low)
    queue.add(high)
    first = queue.pop(0)
    assert first is not None and first.info.key[1] == "high"
    queue.requeue_unschedulable(first)
    second = queue.pop(0)
    assert second is not None and second.info.key[1] == "low"
    queue.done(second.info.key)
    assert queue.pop(0) is None  # "high" waits for a cluster change, not a timer
    assert queue.counts()["unschedulable"] == 1
    queue.move_all()
    assert queue.counts()["backoff"] == 1 and queue.pop(0) is None  # still backing off 1 s
    now[0] += 1.0
    again = queue.pop(0)
    assert again is not None and again.attempts == 1
    queue.requeue_error(again)
    assert queue.backoff_for(2) == 2.0 and queue.backoff_for(5) == 4.0
    now[0] += 2.0
    third = queue.pop(0)
    assert third is not None and third.attempts == 2


def test_queue_retries_a_pod_whose_cluster_changed_while_in_flight() -> None:
    now = [0.0]
    queue = SchedulingQueue(initial_backoff=0.5, clock=lambda: now[0])
    queue.add(PodInfo.from_pod(make_pod()))
    popped = queue.pop(0)
    assert popped is not None
    queue.move_all()  # a node was added while the cycle ran
    queue.requeue_unschedulable(popped)
    assert queue.counts()["backoff"] == 1  # not parked as unschedulable


def test_queue_flushes_long_unschedulable_pods() -> None:
    now = [0.0]
    queue = SchedulingQueue(initial_backoff=0.1, max_unschedulable=10.0, clock=lambda: now[0])
    queue.add(PodInfo.from_pod(make_pod()))
    popped = queue.pop(0)
    assert popped is not None
    queue.requeue_unschedulable(popped)
    now[0] += 5.0
    assert queue.pop(0) is None
    now[0] += 6.0
    assert queue.pop(0) is not None


def test_cache_counts_assumed_pods_and_forgets_them() -> None:
    cache = Cache()
    cache.update_node(make_node("a"))
    pod = PodInfo.from_pod(make_pod(cpu="1", memory="1Gi"))
    cache.assume(pod, "a")
    info = cache.get("a")
    assert info is not None and (info.requested.cpu, info.requested.pods) == (1000, 1)
    cache.forget(pod.key)
    assert (info.requested.cpu, info.requested.pods) == (0, 0)
    cache.assume(pod, "a")
    bound = {**pod.pod, "spec": {**pod.pod["spec"], "nodeName": "a"}}
    assert cache.confirm(bound)
    cache.forget(pod.key)  # confirmed: forget does nothing
    assert info.requested.cpu == 1000
    cache.remove_node("a")
    assert cache.get("a") is None and len(cache) == 0
    cache.update_node(make_node("a"))  # comes back with its pod still counted
    again = cache.get("a")
    assert again is not None and again.requested.cpu == 1000
    assert cache.remove_pod(pod.key) and again.requested.cpu == 0
