"""Adapter lifecycle benchmark: create, start, wait, delete of ``true``, per adapter.

Every contender is a ``RuntimeAdapter`` from ``pytest_containers.adapters`` driven from
this process, so the numbers are what a conformance test pays per container:

- ``reference``: the reference runtime in-process (no interpreter start);
- ``runc``, ``crun``, ``runsc``: the OCI adapter, one command per verb, a forked
  monitor per container (crun's create from a private mount namespace on a hybrid
  cgroup host; runsc with ``--network=none``);
- ``docker``: the Docker Engine at ``DOCKER_HOST``, or a ``dockerd --bridge=none
  --iptables=false`` this bench starts under a temporary directory and stops by PID.

Each iteration runs every contender once, in a rotating order. Reported: the median,
p90 and min of the whole lifecycle in ms, and the median of each verb. A contender
that is not installed or cannot start is skipped with the reason.

Usage: ``python bench/bench_adapters.py [-n 20] [--warmup 2] [--only runc,docker]``.
Writes a JSON result to ``bench/results/`` (gitignored). Exits 1 if a lifecycle
failed or left a container behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pytest_containers.adapters import RuntimeAdapter, bundle_config, open_adapter  # noqa: E402
from pytest_containers.adapters.dockerd import DockerDaemon  # noqa: E402
from pytest_containers.errors import ContainerNotFoundError, ContainersError  # noqa: E402
from reference_runtime.rootfs_builder import make_bundle  # noqa: E402

CONTENDERS = ("reference", "runc", "crun", "runsc", "docker")
VERBS = ("create", "start", "wait", "delete")


@dataclass
class Contender:
    """One adapter with its own state root and bundle, and its samples."""

    name: str
    adapter: RuntimeAdapter
    bundle: Path
    timeout: float
    version: str = ""
    samples: list[float] = field(default_factory=list)
    verbs: dict[str, list[float]] = field(default_factory=lambda: {v: [] for v in VERBS})
    live: set[str] = field(default_factory=set)

    def lifecycle(self, cid: str, record: bool) -> None:
        """create..delete once; raise on a failure or a non-zero exit."""
        times = {}
        self.live.add(cid)
        began = last = time.perf_counter()
        for verb in VERBS:
            if verb == "create":
                self.adapter.create(cid, self.bundle)
            elif verb == "start":
                self.adapter.start(cid)
            elif verb == "wait":
                status = self.adapter.wait(cid, self.timeout)
                if status != 0:
                    raise RuntimeError(f"{self.name}: {cid} exited {status}")
            else:
                self.adapter.delete(cid)
            now = time.perf_counter()
            times[verb], last = now - last, now
        self.live.discard(cid)
        if record:
            self.samples.append(last - began)
            for verb, seconds in times.items():
                self.verbs[verb].append(seconds)

    def cleanup(self) -> list[str]:
        """Delete what an interrupted or failed lifecycle left; name what cannot be."""
        left = []
        for cid in sorted(self.live):
            try:
                self.adapter.delete(cid, force=True)
            except ContainerNotFoundError:  # already gone
                pass
            except ContainersError as exc:
                left.append(f"{self.name}: {cid}: {exc}")
        self.adapter.close()
        return left


def open_contender(name: str, scratch: Path, timeout: float, session: str) -> Contender:
    bundle = make_bundle(scratch / f"bundle-{name}", config=bundle_config(["true"]))
    root, work = scratch / f"state-{name}", scratch / f"work-{name}"
    adapter = open_adapter(name, root, workdir=work, session=session)
    return Contender(name, adapter, bundle, timeout, version=adapter.version())


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


def docker_engine(scratch: Path) -> tuple[DockerDaemon | None, str]:
    """The engine to use: DOCKER_HOST if it answers, else one we start (or the reason)."""
    if os.environ.get("DOCKER_HOST"):
        return None, ""
    daemon = DockerDaemon.start(scratch / "dockerd")
    os.environ["DOCKER_HOST"] = daemon.host  # this process only: open_adapter reads it
    return daemon, f"own dockerd, up in {daemon.startup_seconds * 1000:.0f} ms"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_adapters.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("-n", "--iterations", type=int, default=20, help="default 20")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up lifecycles each")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma list")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per wait")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="whole-bench bound")
    parser.add_argument("--json", type=Path, help="result file (default bench/results/...)")
    ns = parser.parse_args(argv)
    ns.only = [name.strip() for name in ns.only.split(",") if name.strip()]
    unknown = sorted(set(ns.only) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contender {', '.join(unknown)}; use --only {','.join(CONTENDERS)}")
    if not 1 <= ns.iterations <= 1000 or not 0 <= ns.warmup <= 50:
        parser.error("use 1 <= -n <= 1000 and 0 <= --warmup <= 50")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    session = f"bench-{os.getpid()}"
    contenders: list[Contender] = []
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    daemon: DockerDaemon | None = None
    failures: list[str] = []
    try:
        for name in ns.only:
            try:
                if name == "docker":
                    daemon, notes["docker"] = docker_engine(scratch)
                contenders.append(open_contender(name, scratch, ns.timeout, session))
            except (ContainersError, OSError) as exc:
                skipped[name] = str(exc)
        deadline = time.monotonic() + ns.max_seconds
        for i in range(ns.warmup + ns.iterations):
            if time.monotonic() > deadline:
                failures.append(f"stopped after {i} iterations: --max-seconds {ns.max_seconds}")
                break
            order = contenders[i % len(contenders) :] + contenders[: i % len(contenders)]
            for contender in order:
                try:
                    contender.lifecycle(f"bench-{os.getpid()}-{i}", record=i >= ns.warmup)
                except (ContainersError, RuntimeError, TimeoutError) as exc:
                    failures.append(f"{contender.name}: {exc}")
            if failures:
                break
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        with no_interrupts():
            for contender in contenders:
                failures += [f"LEAK {line}" for line in contender.cleanup()]
            if daemon is not None:
                daemon.stop()
            shutil.rmtree(scratch, ignore_errors=True)
    report(ns, contenders, skipped, notes, failures)
    return 1 if failures else 0


def report(
    ns: argparse.Namespace,
    contenders: list[Contender],
    skipped: dict[str, str],
    notes: dict[str, str],
    failures: list[str],
) -> None:
    rows: dict[str, Any] = {}
    print(
        f"{'adapter':10} {'median':>8} {'p90':>8} {'min':>8}   "
        + "  ".join(f"{v:>7}" for v in VERBS)
    )
    for c in contenders:
        if not c.samples:
            continue
        total = summarize(c.samples)
        verbs = {v: statistics.median(s) * 1000 for v, s in c.verbs.items()}
        rows[c.name] = {"total_ms": total, "verbs_median_ms": verbs, "n": len(c.samples)}
        print(
            f"{c.name:10} {total['median']:8.1f} {total['p90']:8.1f} {total['min']:8.1f}   "
            + "  ".join(f"{verbs[v]:7.1f}" for v in VERBS)
        )
    for name, reason in skipped.items():
        print(f"{name:10} skipped: {reason}")
    for name, note in notes.items():
        print(f"{name:10} note: {note}")
    for line in failures:
        print(f"FAILED {line}")
    result = {
        "bench": "bench_adapters",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count()},
        "iterations": ns.iterations,
        "warmup": ns.warmup,
        "results": rows,
        "versions": {c.name: c.version for c in contenders},
        "skipped": skipped,
        "notes": notes,
        "failures": failures,
    }
    out = ns.json or HERE / "results" / f"bench_adapters-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
