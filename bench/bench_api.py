"""API benchmark: mutating-call latency under open-loop load, and cluster start-up time.

    .venv/bin/python bench/bench_api.py                  # 200 req/s for 10 s per contender
    .venv/bin/python bench/bench_api.py --rate 300 --seconds 5 --only api-sqlite

Contenders, each started by this script on 127.0.0.1 and stopped by PID afterwards:

- ``api-sqlite``: ``reference-cluster up`` (HTTPS, bearer token, SQLite store), loaded with
  pod create / label patch / delete over keep-alive connections;
- ``api-etcd``: the same API server on a real etcd (``--store etcd://``);
- ``etcd-raw``: the peer: the same request pacing straight to etcd's JSON gateway
  (``/v3/kv/put``), the floor any etcd-backed API server stands on.

Load is open-loop: request *i* is due at ``start + i / rate`` whatever happened before, and
its latency counts from that due time, so a stall shows up in every request it delays.
Bounded: ``rate * seconds`` requests at most, and ``--seconds`` + 30 s overall per
contender. Also measured: wall time of ``reference-cluster up --nodes 3`` until it returns
with 3 Ready nodes (checked through the API), over ``--up-runs`` runs. Targets: p99 <= 10 ms
at 200 req/s; up <= 1 s (kind needs 12-60 s, kwok about 5 s; neither is run here).
Samples go to ``bench/results/bench_api-<time>.json``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import queue
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLI = [sys.executable, "-m", "reference_runtime.cluster.cli"]
TARGET_P99_MS = 10.0
TARGET_UP_S = 1.0


class Target:
    """Where to send requests: host, port, TLS context and headers."""

    def __init__(self, url: str, token: str = "", ca: bytes | None = None) -> None:
        scheme, rest = url.split("://", 1)
        host, port = rest.rsplit(":", 1)
        self.host, self.port = host.strip("[]"), int(port)
        self.context = (
            ssl.create_default_context(cadata=ca.decode()) if scheme == "https" and ca else None
        )
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def connect(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, context=self.context, timeout=10
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=10)


Request = tuple[int, str, str, bytes, str]  # lane, method, path, body, content type


def api_requests(run: str) -> Iterator[Request]:
    """Create, patch, delete pods in a cycle: every request is a write."""
    base = "/api/v1/namespaces/default/pods"
    i = 0
    while True:
        name = f"bench-{run}-{i}"
        pod = {
            "metadata": {"name": name, "labels": {"bench": run}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        # One lane per pod: its three calls go in order over one connection.
        yield (i, "POST", base, json.dumps(pod).encode(), "application/json")
        patch = b'{"metadata":{"labels":{"patched":"yes"}}}'
        yield (i, "PATCH", f"{base}/{name}", patch, "application/merge-patch+json")
        yield (i, "DELETE", f"{base}/{name}", b"", "application/json")
        i += 1


def etcd_requests(run: str) -> Iterator[Request]:
    i = 0
    while True:
        key = base64.b64encode(f"/bench/{run}/{i}".encode()).decode()
        value = base64.b64encode(b"x" * 400).decode()
        body = json.dumps({"key": key, "value": value}).encode()
        yield (i, "POST", "/v3/kv/put", body, "application/json")
        i += 1


def open_loop(
    target: Target, requests: Iterator[Request], rate: float, seconds: float, workers: int = 4
) -> dict[str, Any]:
    """Send ``rate * seconds`` requests at their due times; latency from due time to answer."""
    total = int(rate * seconds)
    lanes: list[queue.Queue[tuple[float, Request] | None]] = [queue.Queue() for _ in range(workers)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(jobs: queue.Queue[tuple[float, Request] | None]) -> None:
        conn = target.connect()
        while True:
            job = jobs.get()
            if job is None:
                conn.close()
                return
            due, (_, method, path, body, ctype) = job
            try:
                conn.request(method, path, body, {**target.headers, "Content-Type": ctype})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status < 300
                status = str(resp.status)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = target.connect()
                ok, status = False, type(exc).__name__
            done = time.perf_counter()
            with lock:
                latencies.append(done - due)
                if not ok:
                    errors.append(f"{method} {path}: {status}")

    threads = [threading.Thread(target=worker, args=(q,), daemon=True) for q in lanes]
    for t in threads:
        t.start()
    start = time.perf_counter() + 0.05
    deadline = start + seconds + 30
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if time.perf_counter() > deadline:
            break
        request = next(requests)
        lanes[request[0] % workers].put((due, request))
    for lane in lanes:
        lane.put(None)
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()) + 1)
    elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))] if ms else float("nan")

    return {
        "requests": len(ms),
        "errors": len(errors),
        "first_errors": errors[:5],
        "achieved_rate": len(ms) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": ms[-1] if ms else float("nan"),
        "samples_ms": ms,
    }


@contextmanager
def cluster(state: Path, name: str, *extra: str) -> Iterator[tuple[Target, float]]:
    """``reference-cluster up``; yield a target and the seconds ``up`` took; always ``down``."""
    started = time.perf_counter()
    result = subprocess.run(
        [*CLI, "--state-dir", str(state), "up", "--name", name, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.perf_counter() - started
    try:
        if result.returncode != 0:
            raise RuntimeError(f"reference-cluster up failed: {result.stderr.strip()}")
        config = json.loads((state / name / "cluster.json").read_text())
        kubeconfig = Path(config["kubeconfig"]).read_text()
        ca = None
        for line in kubeconfig.splitlines():
            if "certificate-authority-data:" in line:
                ca = base64.b64decode(line.split(":", 1)[1].strip())
        yield Target(config["url"], config["token"], ca), took
    finally:
        subprocess.run(
            [*CLI, "--state-dir", str(state), "down", "--name", name],
            capture_output=True,
            timeout=60,
            check=False,
        )


@contextmanager
def etcd() -> Iterator[str]:
    from reference_runtime.cluster.testing import running_etcd

    with running_etcd() as url:
        yield url


def ready_nodes(target: Target) -> int:
    conn = target.connect()
    try:
        conn.request("GET", "/api/v1/nodes", headers=target.headers)
        nodes = json.loads(conn.getresponse().read())["items"]
    finally:
        conn.close()
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        for n in nodes
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests per second (default 200)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="load duration per contender (default 10)"
    )
    parser.add_argument("--up-runs", type=int, default=5, help="runs of `up --nodes 3` (default 5)")
    parser.add_argument(
        "--only", default="api-sqlite,api-etcd,etcd-raw", help="comma-separated contenders"
    )
    args = parser.parse_args()
    if args.rate <= 0 or not 0 < args.seconds <= 600 or args.rate * args.seconds > 200_000:
        parser.error("need 0 < rate, 0 < seconds <= 600 and rate * seconds <= 200000")
    only = set(args.only.split(","))
    have_etcd = shutil.which("etcd") is not None
    state = Path(tempfile.mkdtemp(prefix="bench-api-"))
    results: dict[str, Any] = {
        "rate": args.rate,
        "seconds": args.seconds,
        "contenders": {},
        "up": {},
    }
    try:
        up_times = []
        for i in range(args.up_runs):
            with cluster(state, f"up{i}", "--nodes", "3") as (target, took):
                ready = ready_nodes(target)
                if ready != 3:
                    raise RuntimeError(f"`up --nodes 3` returned with {ready} Ready nodes")
                up_times.append(took)
        if up_times:
            results["up"] = {
                "runs": up_times,
                "median_s": statistics.median(up_times),
                "max_s": max(up_times),
            }

        runs: list[tuple[str, Callable[[], Any]]] = []
        if "api-sqlite" in only:
            runs.append(("api-sqlite", lambda: cluster(state, "sqlite", "--nodes", "0")))
        for name, run in runs:
            with run() as (target, _):
                results["contenders"][name] = open_loop(
                    target, api_requests(name), args.rate, args.seconds
                )
        if have_etcd and only & {"api-etcd", "etcd-raw"}:
            with etcd() as url:
                if "etcd-raw" in only:
                    host_port = url.removeprefix("etcd://")
                    results["contenders"]["etcd-raw"] = open_loop(
                        Target(f"http://{host_port}"), etcd_requests("raw"), args.rate, args.seconds
                    )
                if "api-etcd" in only:
                    with cluster(state, "etcd", "--nodes", "0", "--store", f"{url}/bench") as (
                        target,
                        _,
                    ):
                        results["contenders"]["api-etcd"] = open_loop(
                            target, api_requests("etcd"), args.rate, args.seconds
                        )
        elif only & {"api-etcd", "etcd-raw"}:
            print(
                "skipped api-etcd and etcd-raw: etcd is not installed (Debian package etcd-server)"
            )
    finally:
        shutil.rmtree(state, ignore_errors=True)

    print(
        f"\nmutating API calls, open loop at {args.rate:.0f} req/s for {args.seconds:.0f} s"
        " (latency from due time)"
    )
    print(
        f"{'contender':<12} {'requests':>8} {'errors':>6} {'rate/s':>7}"
        + "".join(f" {h:>7}" for h in ("p50 ms", "p90 ms", "p99 ms", "max ms"))
    )
    failed = False
    for name, r in results["contenders"].items():
        print(
            f"{name:<12} {r['requests']:>8} {r['errors']:>6} {r['achieved_rate']:>7.1f} "
            f"{r['p50_ms']:>7.2f} {r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.2f}"
        )
        failed |= r["errors"] > 0
        for error in r["first_errors"]:
            print(f"    error: {error}")
    floor = results["contenders"].get("etcd-raw")
    for name in ("api-sqlite", "api-etcd"):
        r = results["contenders"].get(name)
        if r:
            verdict = "meets" if r["p99_ms"] <= TARGET_P99_MS else "MISSES"
            line = f"{name} p99 {r['p99_ms']:.2f} ms {verdict} the target of {TARGET_P99_MS:.0f} ms"
            if name == "api-etcd" and floor:
                line += f" (etcd's own puts, the floor: p99 {floor['p99_ms']:.2f} ms)"
            print(line)
    if results["up"]:
        up = results["up"]
        verdict = "meets" if up["median_s"] <= TARGET_UP_S else "MISSES"
        print(
            f"\n`reference-cluster up --nodes 3` to 3 Ready nodes: median {up['median_s']:.2f} s, "
            f"max {up['max_s']:.2f} s over {len(up['runs'])} runs"
            f" ({verdict} the {TARGET_UP_S:.0f} s target; "
            "kind: 12-60 s, kwok: about 5 s, not run here)"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_api-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"samples: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
