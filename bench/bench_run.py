"""Lifecycle benchmark: ``run`` of ``/bin/true`` in the busybox bundle, create to delete.

Contenders, each run once per iteration in a rotating order, in one process:

- ``runc``: ``runc --root R run --bundle B ID`` (run deletes the container on exit);
- ``crun``: the same command line. crun 1.8 refuses a hybrid cgroup layout, so on such a
  host it runs from a helper process started once in a private mount namespace with the
  cgroup2 mount unmounted. The helper times each crun with the same code the bench uses
  for runc, so neither the namespace setup nor the pipe to the helper is counted;
- ``reference``: the ``reference-runtime`` console script, same command line;
- ``reference-lib``: ``Runtime(root=R).run(id, bundle)`` in this process, no interpreter start.

Usage: ``python bench/bench_run.py [-n 30] [--warmup 3] [--only runc,crun]``.
Writes a JSON result to ``bench/results/`` (gitignored). Exits 1 if a run failed or a
runtime left a container or a cgroup behind.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONTENDERS = ("runc", "crun", "reference", "reference-lib")
TARGETS = {("reference", "runc"): 1.5, ("reference-lib", "crun"): 1.0}
CRUN_METHOD = (
    "crun timed inside a long-lived helper (one subprocess.run per container, like runc) "
    "started once in a private mount namespace without the cgroup2 mount; setup not counted"
)


class ContenderUnavailable(Exception):
    """The contender cannot run on this host; the message says why."""


class RunFailed(Exception):
    """One run exited non-zero or timed out."""


def timed_run(argv: Sequence[str], timeout: float) -> tuple[float, int, str]:
    """Run ``argv`` with no stdin/stdout; return (seconds, exit status, stderr tail).

    Used for every command-line contender, and by the crun helper, so all are timed alike.
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
        rc, err = proc.returncode, proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, err = -1, f"timed out after {timeout:g}s"
    return time.perf_counter() - start, rc, err.strip()[-500:]


# --------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    """One runtime under test, with its own bundle and state root."""

    name: str
    bundle: Path
    root: Path
    timeout: float
    live: set[str] = field(default_factory=set)  # IDs that may still exist

    def setup(self) -> None:
        """Raise ContenderUnavailable when this contender cannot run here."""

    def run(self, cid: str) -> float:
        """Run one container to completion; return its seconds; raise RunFailed."""
        self.live.add(cid)
        seconds, rc, err = self._run(cid)
        if rc != 0:
            raise RunFailed(f"{self.name} run {cid} exited {rc}: {err or '(no stderr)'}")
        self.live.discard(cid)
        return seconds

    def _run(self, cid: str) -> tuple[float, int, str]:
        raise NotImplementedError

    def cleanup(self) -> list[str]:
        """Delete every container this contender may have left; return what could not be."""
        return []


class OciCli(Contender):
    """A binary with runc's command line."""

    command: list[str]

    def setup(self) -> None:
        binary = shutil.which(self.name)
        if binary is None:
            raise ContenderUnavailable(f"{self.name} is not installed")
        self.command = [binary]

    def _argv(self, *args: str) -> list[str]:
        return [*self.command, "--root", str(self.root), *args]

    def _run(self, cid: str) -> tuple[float, int, str]:
        return timed_run(self._argv("run", "--bundle", str(self.bundle), cid), self.timeout)

    def _exec(self, argv: list[str]) -> tuple[int, str]:
        _, rc, err = timed_run(argv, self.timeout)
        return rc, err

    def _exists(self, cid: str) -> bool:
        rc, _ = self._exec(self._argv("state", cid))
        return rc == 0

    def cleanup(self) -> list[str]:
        if not getattr(self, "command", None):
            return []
        for cid in sorted(self.live):
            # runs that failed or were interrupted; a finished `run` already deleted its container
            self._exec(self._argv("delete", "--force", cid))
        left = [cid for cid in sorted(self.live) if self._exists(cid)]
        return [f"{self.name}: container {cid} remains under {self.root}" for cid in left]


class Runc(OciCli):
    pass


class Crun(OciCli):
    """crun, run from a helper in a private mount namespace when the cgroup layout is hybrid."""

    helper: CrunHelper | None = None

    def setup(self) -> None:
        super().setup()
        hidden = hybrid_cgroup2_mounts()
        if not hidden:
            return
        unshare = shutil.which("unshare")
        if unshare is None:
            raise ContenderUnavailable("crun needs `unshare` (util-linux) on a hybrid cgroup host")
        self.helper = CrunHelper.start(unshare, hidden, self.timeout)

    def _run(self, cid: str) -> tuple[float, int, str]:
        argv = self._argv("run", "--bundle", str(self.bundle), cid)
        return self.helper.run(argv) if self.helper else timed_run(argv, self.timeout)

    def _exec(self, argv: list[str]) -> tuple[int, str]:
        if self.helper is None:
            return super()._exec(argv)
        _, rc, err = self.helper.run(argv)
        return rc, err

    def cleanup(self) -> list[str]:
        try:
            return super().cleanup()
        finally:
            if self.helper is not None:
                self.helper.stop()


_CLI_MAIN = "import sys; from reference_runtime.cli import main; sys.exit(main())"


class ReferenceCli(OciCli):
    """The ``reference-runtime`` console script, or ``cli.main`` exactly as the script runs it."""

    how = ""

    def setup(self) -> None:
        script = Path(sys.executable).parent / "reference-runtime"
        found = str(script) if script.exists() else shutil.which("reference-runtime")
        if found:
            self.command, self.how = [found], found
            return
        if importlib.util.find_spec("reference_runtime.cli") is None:
            raise ContenderUnavailable(
                "no reference-runtime console script and no reference_runtime.cli module yet"
            )
        # What the console script does, for a tree that is not pip-installed yet.
        self.command = [sys.executable, "-c", _CLI_MAIN]
        self.how = "python -c 'reference_runtime.cli.main()' (console script not installed)"


class ReferenceLib(Contender):
    """The reference runtime as a library, in this process."""

    runtime: Any = None
    devnull = -1

    def setup(self) -> None:
        try:
            from reference_runtime import Runtime  # type: ignore[attr-defined,unused-ignore]
        except Exception as exc:  # the API lands in parallel; any import failure means "not yet"
            raise ContenderUnavailable(
                f"reference_runtime.Runtime is not importable: {exc}"
            ) from None
        self.runtime = Runtime(root=str(self.root))
        # The same stdio as the command-line contenders get: stdin and stdout on /dev/null.
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)

    def _run(self, cid: str) -> tuple[float, int, str]:
        stdio = (self.devnull, self.devnull, sys.stderr.fileno())
        start = time.perf_counter()
        try:
            rc = self.runtime.run(cid, str(self.bundle), stdio=stdio)
        except Exception as exc:
            return time.perf_counter() - start, -1, f"{type(exc).__name__}: {exc}"
        return time.perf_counter() - start, int(rc), ""

    def cleanup(self) -> list[str]:
        if self.runtime is None:
            return []
        with contextlib.suppress(Exception):  # list() may not exist yet; fall back on `live`
            self.live.update(c if isinstance(c, str) else c.id for c in self.runtime.list())
        left = []
        for cid in sorted(self.live):
            try:
                self.runtime.delete(cid, force=True)
            except Exception as exc:
                if type(exc).__name__ != "ContainerNotFoundError":  # already gone is fine
                    left.append(f"reference-lib: cannot delete {cid}: {exc}")
        os.close(self.devnull)
        return left


class CrunHelper:
    """A child in its own mount namespace that runs and times commands sent over a pipe."""

    def __init__(self, proc: subprocess.Popen[str], timeout: float) -> None:
        self.proc = proc
        self.timeout = timeout
        self.pending = 0  # requests sent whose reply has not been read (after a Ctrl-C)

    @classmethod
    def start(cls, unshare: str, hidden: list[str], timeout: float) -> CrunHelper:
        argv = [unshare, "--mount", "--propagation", "private", "--"]
        argv += [sys.executable, str(Path(__file__).resolve()), "--helper", *hidden]
        # A session of its own: a Ctrl-C meant for the bench must not kill it before cleanup.
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        helper = cls(proc, timeout)
        ready = helper._read()
        if "error" in ready:
            helper.stop()
            raise ContenderUnavailable(f"crun helper: {ready['error']}")
        return helper

    def _stdio(self) -> tuple[IO[str], IO[str]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        return self.proc.stdin, self.proc.stdout

    def _read(self) -> dict[str, Any]:
        line = self._stdio()[1].readline()
        if not line:
            raise RunFailed(f"crun helper exited ({self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, argv: list[str]) -> tuple[float, int, str]:
        stdin, _ = self._stdio()
        while self.pending:  # replies to requests interrupted by a Ctrl-C
            self._read()
            self.pending -= 1
        stdin.write(json.dumps({"argv": argv, "timeout": self.timeout}) + "\n")
        stdin.flush()
        self.pending += 1
        reply = self._read()
        self.pending -= 1
        return reply["seconds"], reply["rc"], reply["stderr"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self._stdio()[0].close()  # EOF: the helper exits
            try:
                self.proc.wait(timeout=self.timeout + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own child, by its Popen handle
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def helper_main(hidden: list[str]) -> int:
    """Body of the crun helper, already in a private mount namespace (see CrunHelper)."""
    for point in hidden:
        proc = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(json.dumps({"error": f"umount {point}: {proc.stderr.strip()}"}), flush=True)
            return 1
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        seconds, rc, err = timed_run(request["argv"], request["timeout"])
        print(json.dumps({"seconds": seconds, "rc": rc, "stderr": err}), flush=True)
    return 0


def hybrid_cgroup2_mounts() -> list[str]:
    """cgroup2 mount points below /sys/fs/cgroup when v1 hierarchies are mounted too."""
    v1, v2 = False, []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point, fstype = fields[4], fields[sep + 1]
            if fstype == "cgroup":
                v1 = True
            elif fstype == "cgroup2" and point.startswith("/sys/fs/cgroup/"):
                v2.append(point)
    return v2 if v1 else []


# --------------------------------------------------------------------------- measuring


def summarize(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[8] if len(ms) > 1 else ms[0]
    return {"median": statistics.median(ms), "p90": p90, "min": ms[0], "mean": statistics.fmean(ms)}


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Let cleanup finish even if Ctrl-C is pressed again."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_run.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("-n", "--iterations", type=int, default=30, help="default 30")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs each (default 3)")
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help=f"comma list of {', '.join(CONTENDERS)}"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="whole-bench bound")
    parser.add_argument("--json", type=Path, help="result file (default bench/results/...)")
    parser.add_argument("--helper", nargs="*", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    ns.only = [name.strip() for name in ns.only.split(",") if name.strip()]
    unknown = sorted(set(ns.only) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contender {', '.join(unknown)}; use --only {','.join(CONTENDERS)}")
    if not 1 <= ns.iterations <= 10_000 or not 0 <= ns.warmup <= 100:
        parser.error("use 1 <= -n <= 10000 and 0 <= --warmup <= 100")
    return ns


def make_contenders(names: list[str], scratch: Path, timeout: float) -> list[Contender]:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from reference_runtime.rootfs_builder import build_rootfs, make_bundle

    rootfs = build_rootfs("busybox")
    kinds: dict[str, type[Contender]] = {
        "runc": Runc,
        "crun": Crun,
        "reference": ReferenceCli,
        "reference-lib": ReferenceLib,
    }
    return [
        kinds[name](
            name,
            make_bundle(scratch / f"bundle-{name}", args=["/bin/true"], rootfs=rootfs),
            scratch / f"state-{name}",
            timeout,
        )
        for name in names
    ]


def bench(ns: argparse.Namespace, scratch: Path, out: dict[str, Any]) -> int:
    failed = 0
    contenders = []
    for contender in make_contenders(ns.only, scratch, ns.timeout):
        out["contenders"].append(contender)  # cleaned up in main(), whatever happens
        try:
            contender.setup()
        except ContenderUnavailable as exc:
            print(f"skip {contender.name}: {exc}")
            out["skipped"][contender.name] = str(exc)
            continue
        contenders.append(contender)
        if isinstance(contender, ReferenceCli):
            out["reference_cli"] = contender.how
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    deadline = time.monotonic() + ns.max_seconds
    total = ns.warmup + ns.iterations
    for i in range(total):
        if time.monotonic() > deadline:
            print(f"stopping after {i} iterations: --max-seconds {ns.max_seconds:g} reached")
            break
        live = [c for c in contenders if c.name not in out["failed"]]
        if not live:
            break
        k = i % len(live)
        for contender in live[k:] + live[:k]:
            cid = f"bench-{contender.name}-{os.getpid()}-{i}"
            try:
                seconds = contender.run(cid)
            except RunFailed as exc:
                print(f"FAIL {exc}", file=sys.stderr)
                out["failed"][contender.name] = str(exc)
                failed += 1
                continue
            if i >= ns.warmup:
                samples[contender.name].append(seconds)
    out["samples_ms"] = {name: [s * 1000 for s in v] for name, v in samples.items() if v}
    out["stats_ms"] = {name: summarize(v) for name, v in samples.items() if v}
    return failed


def report(out: dict[str, Any]) -> None:
    stats = out["stats_ms"]
    print(f"\n{'contender':<15}{'n':>5}{'median ms':>12}{'p90 ms':>10}{'min ms':>10}")
    for name in out["only"]:
        if name in stats:
            s = stats[name]
            n = len(out["samples_ms"][name])
            print(f"{name:<15}{n:>5}{s['median']:>12.2f}{s['p90']:>10.2f}{s['min']:>10.2f}")
        else:
            why = out["skipped"].get(name) or out["failed"].get(name) or "no samples"
            print(f"{name:<15}  -- {why}")
    out["ratios"] = {}
    pairs = [*TARGETS, ("crun", "runc")]
    for num, den in pairs:
        target = TARGETS.get((num, den))
        goal = f"target <= {target:g}" if target else "for information"
        if num in stats and den in stats:
            ratio = stats[num]["median"] / stats[den]["median"]
            out["ratios"][f"{num}/{den}"] = ratio
            verdict = "" if target is None else (" ok" if ratio <= target else " MISSED")
            print(f"{num}/{den} median ratio: {ratio:.2f} ({goal}){verdict}")
        else:
            print(f"{num}/{den} median ratio: n/a ({goal})")
    if "crun" in stats:
        print(f"crun: {out['crun_method']}")


def sweep_cgroups(pid: int, base: str = "/sys/fs/cgroup") -> list[str]:
    """Remove cgroups left for this run's containers; say which runtime left how many.

    A runtime must remove its container's cgroups on delete; one that does not is reported
    (and the bench exits 1), and the empty directories are removed so the host stays clean.
    """
    pattern = re.compile(rf"^bench-(.+)-{pid}-\d+$")
    found: dict[str, list[str]] = {}
    kept: list[str] = []
    for top, dirs, _ in os.walk(base, topdown=False):
        for name in dirs:
            match = pattern.match(name)
            if match is None:
                continue
            path = os.path.join(top, name)
            found.setdefault(match.group(1), []).append(path)
            try:
                os.rmdir(path)
            except FileNotFoundError:  # already gone: removed between the walk and now
                pass
            except OSError as exc:  # EBUSY: processes or child cgroups remain
                kept.append(f"{path} ({exc.strerror})")
    lines = [
        f"{runtime}: left {len(paths)} cgroup dirs, e.g. {paths[0]}"
        for runtime, paths in sorted(found.items())
    ]
    return lines + [f"cgroup not removable: {path}" for path in kept]


def host_info() -> dict[str, Any]:
    def version(binary: str) -> str | None:
        path = shutil.which(binary)
        if path is None:
            return None
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        return proc.stdout.splitlines()[0] if proc.stdout else None

    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runc": version("runc"),
        "crun": version("crun"),
        "hybrid_cgroup2_mounts": hybrid_cgroup2_mounts(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.helper is not None:
        return helper_main(ns.helper)
    if os.geteuid() != 0:
        print("bench_run.py: error: needs root (runc and crun create namespaces and cgroups)")
        return 1
    out: dict[str, Any] = {
        "bench": "run /bin/true, create to delete",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "iterations": ns.iterations,
        "warmup": ns.warmup,
        "only": ns.only,
        "host": host_info(),
        "crun_method": CRUN_METHOD,
        "skipped": {},
        "failed": {},
        "contenders": [],  # live objects, for cleanup; removed before writing the JSON
    }
    scratch = Path(tempfile.mkdtemp(prefix="ptc-bench-run-"))
    status = 0
    try:
        status = 1 if bench(ns, scratch, out) else 0
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        status = 130
    except Exception as exc:  # e.g. no rootfs can be built: one line, then clean up
        print(f"bench_run.py: error: {exc}", file=sys.stderr)
        status = 1
    finally:
        with no_interrupts():
            leftovers = []
            for contender in out.pop("contenders"):
                try:
                    leftovers += contender.cleanup()
                except Exception as exc:  # keep cleaning the others
                    leftovers.append(f"{contender.name}: cleanup failed: {exc}")
            shutil.rmtree(scratch, ignore_errors=True)
            leftovers += sweep_cgroups(os.getpid())
            out["leaks"] = leftovers
            for line in leftovers:
                print(f"LEAK {line}", file=sys.stderr)
            if leftovers:
                status = status or 1
    if status == 130 or "stats_ms" not in out:
        return status
    report(out)
    path = ns.json or HERE / "results" / f"bench_run-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
