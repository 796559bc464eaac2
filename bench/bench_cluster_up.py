"""Cluster start-up: from ``ClusterHandle.up`` to N Ready nodes, real agents and hollow.

    .venv/bin/python bench/bench_cluster_up.py               # 5 runs of each, 3 nodes
    .venv/bin/python bench/bench_cluster_up.py --runs 3 --nodes 3

Contenders, each started and taken down (by PID, every netns and cgroup removed) by
this script:

- ``agents``: ``nodes=3``: three node agents, each in its own network namespace with a
  veth link, registering its Node and Lease through the API over HTTPS;
- ``hollow``: ``hollow_nodes=3``: Node objects kept Ready by the control plane, no agents.

Peers are not run here (they need container images and, for kind, a Docker Engine and
network access); their published start-up times are the yardstick: kind 12-60 s to a
Ready control plane, kwok about 5 s. The ratio printed is the peer's time over ours.
Target: <= 1 s to 3 Ready nodes with real agents. Bounded: ``--runs`` per contender, each
with a 30 s timeout. Samples go to ``bench/results/bench_cluster_up-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from reference_runtime.cluster.handle import ClusterHandle  # noqa: E402

PEERS = {"kind (published, best case)": 12.0, "kwok (published)": 5.0}


def one_run(kind: str, nodes: int, state: Path, index: int) -> float:
    kwargs = (
        {"nodes": nodes, "hollow_nodes": 0}
        if kind == "agents"
        else {
            "nodes": 0,
            "hollow_nodes": nodes,
        }
    )
    started = time.monotonic()
    handle = ClusterHandle.up(f"bench{index}", state_dir=state, timeout=30.0, **kwargs)
    elapsed = time.monotonic() - started
    handle.down()
    leftover = handle.host_resources()
    if leftover:
        raise SystemExit(f"down left {leftover}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"agents": [], "hollow": []}
    with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
        for i in range(args.runs):
            for kind in samples:
                samples[kind].append(one_run(kind, args.nodes, Path(tmp), i))
    print(f"up to {args.nodes} Ready nodes, {args.runs} runs each (seconds)")
    for kind, values in samples.items():
        median = statistics.median(values)
        print(f"  {kind:7} median {median:.2f}  min {min(values):.2f}  max {max(values):.2f}")
        for peer, seconds in PEERS.items():
            print(f"    {peer}: {seconds:.0f} s -> {seconds / median:.0f}x faster")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_cluster_up-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"nodes": args.nodes, "samples": samples}, indent=2))
    print(f"samples: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
