"""Fixture benchmark: setup + teardown of the plugin's fixtures against a plain peer.

Pairs, measured one after the other; within a pair each contender runs once per
iteration in a rotating order, in one process:

- ``isolated_namespaces`` (kinds pid, mount, uts, ipc, net; target ``["true"]``: the
  request to the session's helper process, which clones the target into its namespaces;
  the target mounts /proc and execs; the helper reaps it and reports; the ledger record
  written and released) against ``unshare -pfmuin --mount-proc true`` from
  ``subprocess.run`` (util-linux). The helper is started once, in the warm-up.
  Target: ratio <= 1.5.
- ``cgroup_budget(memory="64M", pids=64)`` made and closed (on v1 hierarchies: a
  ``mkdir`` per hierarchy, the memory, memory+swap and pids limits written, an ``rmdir``
  per hierarchy; the ledger record written and released) against plain ``os.mkdir``, a
  write of the memory and the pids limit, and ``os.rmdir`` in the memory and pids
  hierarchies (v1 and hybrid hosts; on a v2 host one directory with ``memory.max`` and
  ``pids.max``). Target: ratio <= 1.0.
- ``netns_hosts(2)`` made and closed (two namespaces, a veth link, addresses, routes),
  alone: there is no comparable peer.

The factories are the ones the fixtures use, over a throwaway ledger root. Usage:
``python bench/bench_fixtures.py [-n 30] [--warmup 3] [--max-seconds 300]``. Prints a table
of median, p90 and min in ms and the ratios; writes the samples to ``bench/results/``
(gitignored). Exits 1 if a run fails or anything is left behind (reported as ``LEAK``
and removed).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pytest_containers.cgroups import CgroupBudgetFactory  # noqa: E402
from pytest_containers.ledger import Ledger  # noqa: E402
from pytest_containers.namespaces import NamespaceFactory  # noqa: E402
from pytest_containers.netns import NetnsFactory  # noqa: E402
from reference_runtime.cgroups import Layout, discover_mounts, layout_of  # noqa: E402

KINDS = ("pid", "mount", "uts", "ipc", "net")
MEMORY = 64 << 20
PIDS = 64
PAIRS = (
    ("isolated_namespaces", "unshare -pfmuin", 1.5),
    ("cgroup_budget", "plain mkdir/write/rmdir", 1.0),
)


class Bench:
    """The contenders, sharing one throwaway ledger."""

    def __init__(self, root: Path, timeout: float) -> None:
        self.ledger = Ledger.for_process(root, "bench")
        self.namespaces = NamespaceFactory(self.ledger, timeout)
        self.cgroups = CgroupBudgetFactory(self.ledger, timeout)
        self.netns = NetnsFactory(self.ledger, timeout=timeout)
        self.timeout = timeout
        self.plain_dirs = self._plain_layout()
        self.unshare = shutil.which("unshare")
        self._plain_count = 0

    @staticmethod
    def _plain_layout() -> list[tuple[str, str, str]]:
        """(hierarchy root, limit file, value) for the plain peer."""
        mounts = discover_mounts()
        if layout_of(mounts) is Layout.V2:
            assert mounts.v2 is not None
            return [(mounts.v2, "memory.max", str(MEMORY)), (mounts.v2, "pids.max", str(PIDS))]
        memory, pids = mounts.v1_for("memory"), mounts.v1_for("pids")
        if memory is None or pids is None:
            raise SystemExit("the memory and pids v1 hierarchies must be mounted")
        return [
            (memory.mountpoint, "memory.limit_in_bytes", str(MEMORY)),
            (pids.mountpoint, "pids.max", str(PIDS)),
        ]

    def contenders(self) -> dict[str, Callable[[], None]]:
        found: dict[str, Callable[[], None]] = {
            "isolated_namespaces": self.isolated_namespaces,
            "cgroup_budget": self.cgroup_budget,
            "plain mkdir/write/rmdir": self.plain_cgroup,
            "netns_hosts(2)": self.netns_hosts,
        }
        if self.unshare is not None:
            found["unshare -pfmuin"] = self.unshare_true
        return found

    def isolated_namespaces(self) -> None:
        result = self.namespaces(["true"], kinds=KINDS)
        if result.returncode != 0:
            raise RuntimeError(f"isolated_namespaces(['true']) exited {result.returncode}")

    def unshare_true(self) -> None:
        assert self.unshare is not None
        argv = [self.unshare, "-pfmuin", "--mount-proc", "true"]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=self.timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")

    def cgroup_budget(self) -> None:
        self.cgroups(memory=MEMORY, pids=PIDS).close()

    def plain_cgroup(self) -> None:
        self._plain_count += 1
        name = f"pc-bench-{os.getpid()}-plain-{self._plain_count}"
        made: list[str] = []
        try:
            for root, limit, value in self.plain_dirs:
                directory = os.path.join(root, name)
                if directory not in made:
                    os.mkdir(directory)
                    made.append(directory)
                with open(os.path.join(directory, limit), "w") as f:
                    f.write(value)
        finally:
            for directory in reversed(made):
                os.rmdir(directory)

    def netns_hosts(self) -> None:
        self.netns(2).close()

    def leftovers(self, helper: int | None = None) -> list[str]:
        """What is left: named resources and ledger records (but the record of the
        ``helper`` process, which runs until the factory is closed)."""
        prefix = f"pc-bench-{os.getpid()}-"
        found = glob.glob(f"/run/netns/{prefix}*") + glob.glob(f"/sys/fs/cgroup/*/{prefix}*")
        found += glob.glob(f"/sys/fs/cgroup/{prefix}*")
        found += [
            f"ledger record {r.describe()}"
            for r in self.ledger.outstanding()
            if helper is None or r.details.get("pid") != helper
        ]
        return sorted(found)

    def cleanup(self) -> list[str]:
        """Close everything the factories still hold; return what was left (and removed):
        what they still held, then what closing them did not remove."""
        left = self.leftovers(helper=self.namespaces.helper_pid)
        for factory in (self.namespaces, self.cgroups, self.netns):
            with contextlib.suppress(Exception):  # report below, whatever failed here
                factory.close()
        for path in glob.glob(f"/sys/fs/cgroup/*/pc-bench-{os.getpid()}-plain-*"):
            with contextlib.suppress(OSError):  # already gone, or the report names it
                os.rmdir(path)
        return left + [f"{line} (after closing the factories)" for line in self.leftovers()]


def summarize(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[8] if len(ms) > 1 else ms[0]
    return {"median": statistics.median(ms), "p90": p90, "min": ms[0]}


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Let cleanup finish even if Ctrl-C is pressed again."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def measure(
    contenders: dict[str, Callable[[], None]], iterations: int, warmup: int, deadline: float
) -> tuple[dict[str, list[float]], bool]:
    """Run every contender once per iteration, rotating the order; (samples, complete)."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(iterations):
        if time.monotonic() > deadline:
            return samples, False
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            samples[name].append(time.perf_counter() - start)
    return samples, True


def measure_phases(
    bench: Bench, iterations: int, warmup: int, max_seconds: float
) -> tuple[dict[str, list[float]], bool]:
    """Each pair interleaved on its own, then netns_hosts alone: tearing down a network
    namespace goes on in the kernel after the call, and must not slow another pair."""
    contenders = bench.contenders()
    deadline = time.monotonic() + max_seconds
    samples: dict[str, list[float]] = {}
    for ours, peer, _ in PAIRS:
        phase = {name: contenders[name] for name in (ours, peer) if name in contenders}
        found, complete = measure(phase, iterations, warmup, deadline)
        samples.update(found)
        if not complete:
            return samples, False
    found, complete = measure(
        {"netns_hosts(2)": contenders["netns_hosts(2)"]}, iterations, warmup, deadline
    )
    samples.update(found)
    return samples, complete


def report(samples: dict[str, list[float]]) -> dict[str, Any]:
    stats = {name: summarize(s) for name, s in samples.items() if s}
    width = max(len(name) for name in stats)
    print(f"{'contender':<{width}}  {'median':>8}  {'p90':>8}  {'min':>8}   (ms)")
    for name, s in stats.items():
        print(f"{name:<{width}}  {s['median']:8.3f}  {s['p90']:8.3f}  {s['min']:8.3f}")
    ratios = {}
    for ours, peer, target in PAIRS:
        if ours in stats and peer in stats:
            ratio = stats[ours]["median"] / stats[peer]["median"]
            verdict = "ok" if ratio <= target else "ABOVE TARGET"
            ratios[f"{ours}/{peer}"] = {"ratio": ratio, "target": target}
            print(f"{ours} / {peer}: {ratio:.2f}x (target <= {target}) {verdict}")
        else:
            print(f"{ours} / {peer}: not measured ({peer} unavailable)")
    return {"stats": stats, "ratios": ratios}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_fixtures.py", description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--iterations", type=int, default=30, help="default 30")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs each (default 3)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="whole-bench bound")
    parser.add_argument("--json", type=Path, help="result file (default bench/results/...)")
    ns = parser.parse_args(argv)
    if not 1 <= ns.iterations <= 10_000 or not 0 <= ns.warmup <= 100:
        parser.error("use 1 <= -n <= 10000 and 0 <= --warmup <= 100")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_fixtures.py needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="pc-bench-ledger-"))
    bench = Bench(root, args.timeout)
    status = 0
    try:
        if bench.unshare is None:
            print("unshare (util-linux) is not installed: isolated_namespaces runs alone")
        samples, complete = measure_phases(bench, args.iterations, args.warmup, args.max_seconds)
        if not complete:
            print(f"stopped after --max-seconds {args.max_seconds:g}")
        result = report(samples)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status, result, samples = 130, {}, {}
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        status, result, samples = 1, {}, {}
    finally:
        with no_interrupts():
            left = bench.cleanup()
            shutil.rmtree(root, ignore_errors=True)
    for line in left:
        print(f"LEAK {line} (removed)")
    if left:
        status = status or 1
    if result:
        out = (
            args.json or HERE / "results" / f"bench_fixtures-{time.strftime('%Y%m%d-%H%M%S')}.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"kernel": platform.release(), "python": platform.python_version()}
        meta["iterations"] = args.iterations
        out.write_text(json.dumps({**meta, **result, "samples": samples}, indent=1))
        print(f"samples: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
