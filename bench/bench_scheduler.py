"""Scheduler benchmark: pods bound per second on 5000 hollow nodes, in-process.

    .venv/bin/python bench/bench_scheduler.py                 # 5000 nodes, 1000 + 10000 pods
    .venv/bin/python bench/bench_scheduler.py --nodes 500 --pods 2000

The workload is kube-scheduler's scheduler_perf ``SchedulingBasic/5000Nodes_10000Pods``
(``test/integration/scheduler_perf/misc/performance-config.yaml``): ``--nodes`` nodes
like its ``node-default.yaml`` (4 cpu, 32Gi, 110 pods, Ready), ``--init-pods`` pods
scheduled first and not measured, then ``--pods`` measured pods like its
``pod-default.yaml`` (requests = limits = 100m cpu, 500Mi memory). Its CI threshold for
that workload is 680 pods/s (a regression floor set below the observed minimum); the
ratio to it is printed. kube-scheduler is not run here: it needs a kube-apiserver and
etcd, which this project does not ship.

What runs: a ``Registry`` over an in-memory SQLite store (no HTTP) and the ``Scheduler``
with the default plugins, in this process. Two measurements, each of ``--pods`` pods:

- ``concurrent`` (scheduler_perf's way): timed from just before the first measured pod is
  created until the scheduler has bound the last one. A thread creates the pods through
  the registry while the scheduler watches, queues, filters, scores and binds them, all
  competing for the one interpreter and the store's lock.
- ``backlog``: the pods are created with the scheduler stopped; timed from the start of a
  new scheduler (its list+watch of all nodes and pods included, and also shown apart)
  until all are bound.

Also reported: the scheduling thread's busy time per pod (cycle + binding write) and the
creation time. Afterwards every pod is checked to be bound, and no node to be committed
beyond its allocatable cpu, memory or pod count.

Bounded: ``--nodes`` + ``--init-pods`` + ``--pods`` objects, and ``--max-seconds``
overall (exit 1 if the pods are not all bound by then). Samples go to
``bench/results/bench_scheduler-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reference_runtime.cluster.api.registry import Registry  # noqa: E402
from reference_runtime.cluster.scheduler import (  # noqa: E402
    QueuedPod,
    Scheduler,
    SchedulerConfig,
    ScheduleResult,
    node_allocatable,
    pod_requests,
)
from reference_runtime.cluster.store import open_store  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KUBE_SCHEDULER_THRESHOLD = 680.0  # SchedulingBasic/5000Nodes_10000Pods, pods/s
TARGET = 1000.0

POD = {
    "metadata": {"generateName": "pod-"},
    "spec": {
        "containers": [
            {
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10",
                "ports": [{"containerPort": 80}],
                "resources": {
                    "limits": {"cpu": "100m", "memory": "500Mi"},
                    "requests": {"cpu": "100m", "memory": "500Mi"},
                },
            }
        ]
    },
}


def node(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"scheduler-perf-{i:05d}"},
        "spec": {},
        "status": {
            "capacity": {"pods": "110", "cpu": "4", "memory": "32Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


class TimedScheduler(Scheduler):
    """The scheduler, adding up how long its thread spends per pod."""

    busy = 0.0

    def schedule_one(self, popped: QueuedPod) -> ScheduleResult | None:
        start = time.perf_counter()
        try:
            return super().schedule_one(popped)
        finally:
            self.busy += time.perf_counter() - start


def create_pods(registry: Registry, namespace: str, count: int, deadline: float) -> float:
    start = time.perf_counter()
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        registry.create("pods", POD, namespace=namespace)
    return time.perf_counter() - start


def wait_scheduled(scheduler: Scheduler, count: int, deadline: float) -> float | None:
    """The time at which ``count`` pods had been bound (polled every 5 ms), or None."""
    while scheduler.stats["scheduled"] < count:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)
    return time.perf_counter()


def verify(registry: Registry, expected: int) -> tuple[list[str], Counter[str]]:
    problems: list[str] = []
    per_node: Counter[str] = Counter()
    used: dict[str, list[int]] = {}
    for pod in registry.list("pods", namespace=None)["items"]:
        name = pod["spec"].get("nodeName")
        if not name:
            problems.append(f"pod {pod['metadata']['name']} is not bound")
            continue
        per_node[name] += 1
        asked = pod_requests(pod)
        total = used.setdefault(name, [0, 0])
        total[0] += asked.cpu
        total[1] += asked.memory
    for item in registry.list("nodes")["items"]:
        name = item["metadata"]["name"]
        have = node_allocatable(item)
        cpu, memory = used.get(name, [0, 0])
        if cpu > have.cpu or memory > have.memory or per_node[name] > have.pods:
            problems.append(f"node {name} is over-committed")
    if sum(per_node.values()) != expected:
        problems.append(f"{sum(per_node.values())} pods bound, expected {expected}")
    return problems, per_node


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--init-pods", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--percentage", type=int, default=0, help="percentageOfNodesToScore")
    parser.add_argument("--max-seconds", type=float, default=180.0)
    args = parser.parse_args()
    if min(args.nodes, args.pods) <= 0 or args.init_pods < 0:
        parser.error("--nodes and --pods must be positive, --init-pods 0 or more")
    deadline = time.monotonic() + args.max_seconds

    store = open_store("sqlite::memory:", history=1000)
    registry = Registry(store)
    registry.bootstrap()
    for namespace in ("namespace-2", "namespace-3"):
        registry.create("namespaces", {"metadata": {"name": namespace}})
    setup = time.perf_counter()
    for i in range(args.nodes):
        registry.create("nodes", node(i))
    print(f"{args.nodes} nodes registered in {time.perf_counter() - setup:.1f}s", flush=True)

    config = SchedulerConfig(events=False, percentage_of_nodes_to_score=args.percentage)
    results: dict[str, dict[str, float]] = {}
    scheduler = TimedScheduler(registry, config)
    scheduler.start()
    try:
        if not scheduler.wait_for_sync(60):
            print("the scheduler did not sync within 60 s", file=sys.stderr)
            return 1
        create_pods(registry, "default", args.init_pods, deadline)
        if wait_scheduled(scheduler, args.init_pods, deadline) is None:
            print("the initial pods were not all bound in time", file=sys.stderr)
            return 1
        print(f"{args.init_pods} initial pods bound; measuring {args.pods} pods", flush=True)
        busy_before = scheduler.busy
        created: list[float] = []
        start = time.perf_counter()
        creator = threading.Thread(
            target=lambda: created.append(
                create_pods(registry, "namespace-2", args.pods, deadline)
            ),
            name="creator",
        )
        creator.start()
        end = wait_scheduled(scheduler, args.init_pods + args.pods, deadline)
        creator.join()
        if end is not None:
            results["concurrent"] = {
                "seconds": end - start,
                "create_seconds": created[0],
                "busy_us_per_pod": (scheduler.busy - busy_before) / args.pods * 1e6,
            }
    finally:
        scheduler.stop()
    if end is not None:
        create_seconds = create_pods(registry, "namespace-3", args.pods, deadline)
        scheduler = TimedScheduler(registry, config)
        start = time.perf_counter()
        scheduler.start()
        try:
            scheduler.wait_for_sync(max(deadline - time.monotonic(), 0))
            synced = time.perf_counter()
            end = wait_scheduled(scheduler, args.pods, deadline)
        finally:
            scheduler.stop()
        if end is not None:
            results["backlog"] = {
                "seconds": end - start,
                "sync_seconds": synced - start,
                "create_seconds": create_seconds,
                "busy_us_per_pod": scheduler.busy / args.pods * 1e6,
            }
    if end is None:
        print(f"not all pods were bound within {args.max_seconds:.0f}s", file=sys.stderr)
        store.close()
        return 1
    problems, per_node = verify(registry, args.init_pods + 2 * args.pods)
    store.close()

    counts = sorted(per_node.get(f"scheduler-perf-{i:05d}", 0) for i in range(args.nodes))
    print(f"measured pods:        {args.pods} on {args.nodes} nodes, per mode")
    for mode, r in results.items():
        r["pods_per_second"] = rate = args.pods / r["seconds"]
        r["ratio_to_kube_scheduler_threshold"] = rate / KUBE_SCHEDULER_THRESHOLD
        print(
            f"{mode + ':':<12} {rate:6.0f} pods/s ({r['seconds']:.2f} s;"
            f" {rate / KUBE_SCHEDULER_THRESHOLD:.2f}x kube-scheduler's threshold of"
            f" {KUBE_SCHEDULER_THRESHOLD:.0f} pods/s; target >= {TARGET:.0f});"
            f" scheduler busy {r['busy_us_per_pod']:.0f} us/pod;"
            f" creating took {r['create_seconds']:.2f} s"
        )
        if "sync_seconds" in r:
            after = args.pods / (r["seconds"] - r["sync_seconds"])
            print(
                f"{'':<12} of which {r['sync_seconds']:.2f} s listing {args.nodes} nodes and"
                f" {args.init_pods + 2 * args.pods} pods; {after:.0f} pods/s after that"
            )
    median = counts[len(counts) // 2]
    print(f"pods per node:        min {counts[0]}, median {median}, max {counts[-1]}")
    for problem in problems[:10]:
        print(f"PROBLEM: {problem}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_scheduler-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "nodes": args.nodes,
                "init_pods": args.init_pods,
                "pods": args.pods,
                "percentage_of_nodes_to_score": args.percentage,
                "modes": results,
                "kube_scheduler_threshold": KUBE_SCHEDULER_THRESHOLD,
                "problems": problems,
            },
            indent=2,
        )
    )
    print(f"samples: {out}")
    slow = [m for m, r in results.items() if r["pods_per_second"] < TARGET]
    if slow:
        print(f"below the target of {TARGET:.0f} pods/s: {', '.join(slow)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
