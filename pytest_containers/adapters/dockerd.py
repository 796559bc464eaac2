"""A throwaway Docker Engine for tests and benchmarks, with no networking at all.

``DockerDaemon.start(base)`` runs ``dockerd --bridge=none --iptables=false
--ip6tables=false`` with its data root, exec root, pidfile and unix socket under
``base``, and a cgroup parent of its own; dockerd starts its own containerd.
``stop()`` ends it by PID (SIGTERM, then SIGKILL), removes ``base`` and the cgroup
parent. The plugin never starts a daemon for users: ``--runtime=docker`` uses the
engine at ``DOCKER_HOST``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from reference_runtime import kernel

from ..errors import RuntimeUnavailableError

START_TIMEOUT = 30.0


def _cgroup_dirs(parent: str) -> list[Path]:
    """Where dockerd made ``--cgroup-parent``: at each hierarchy's root, or below its
    own cgroup there (a relative parent: here the memory hierarchy puts us below /)."""
    root = Path("/sys/fs/cgroup")
    candidates = [root / parent] + [d / parent for d in root.iterdir() if d.is_dir()]
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            name = controllers.replace("name=", "") or "unified"
            for base in (root / name, root):
                candidates.append(base / path.lstrip("/") / parent)
    return sorted({d for d in candidates if d.is_dir()}, key=lambda d: -len(d.parts))


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(prefix)]


class DockerDaemon:
    """One dockerd of ours; ``host`` is its ``DOCKER_HOST`` value."""

    def __init__(self, base: Path, proc: subprocess.Popen[bytes], cgroup_parent: str) -> None:
        self.base = base
        self.proc = proc
        self.pid = proc.pid
        self.cgroup_parent = cgroup_parent
        self.host = f"unix://{base / 'docker.sock'}"
        self.startup_seconds = 0.0

    @classmethod
    def start(cls, base: Path, *, timeout: float = START_TIMEOUT) -> DockerDaemon:
        """Start dockerd under ``base`` (a new or empty directory; keep it short: the
        socket path must fit in 108 bytes) and wait until it answers."""
        __tracebackhide__ = True
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise RuntimeUnavailableError("dockerd not found on PATH: apt-get install docker.io")
        base.mkdir(parents=True, exist_ok=True)
        cgroup_parent = f"pytest-containers-dockerd-{os.getpid()}-{base.name}"
        argv = [
            dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false",
            "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "docker.pid"), "-H", f"unix://{base / 'docker.sock'}",
            "--cgroup-parent", cgroup_parent,
        ]  # fmt: skip
        began = time.monotonic()
        with open(base / "dockerd.log", "wb") as log:
            # a session of its own: a Ctrl-C is for pytest, whose cleanup stops it
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        daemon = cls(base, proc, cgroup_parent)
        try:
            daemon._wait_ready(began + timeout)
        except BaseException:
            daemon.stop()
            raise
        daemon.startup_seconds = time.monotonic() - began
        return daemon

    def _wait_ready(self, deadline: float) -> None:
        __tracebackhide__ = True
        import docker

        sock = self.base / "docker.sock"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeUnavailableError(
                    f"dockerd exited with {self.proc.returncode}: {self.log_tail()}"
                )
            if sock.exists():
                client = docker.DockerClient(base_url=self.host, timeout=5)
                try:
                    client.ping()
                    return
                except Exception:  # not answering yet: keep polling until the deadline
                    pass
                finally:
                    client.close()
            time.sleep(0.05)
        raise RuntimeUnavailableError(
            f"dockerd did not answer within {START_TIMEOUT:.0f}s: {self.log_tail()}"
        )

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.base / "dockerd.log").read_text(errors="replace")
        except FileNotFoundError:  # never started
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """End dockerd (and so its containerd) and remove everything it made. Idempotent."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        # A killed dockerd can leave its overlay mounts: never let rmtree walk into one.
        for point in sorted(_mounts_under(self.base), reverse=True):
            with contextlib.suppress(FileNotFoundError, OSError):  # EINVAL: not mounted now
                kernel.umount(point, kernel.MNT_DETACH)
        busy = []
        for directory in _cgroup_dirs(self.cgroup_parent):
            try:
                directory.rmdir()
            except FileNotFoundError:  # already gone
                pass
            except OSError as exc:
                busy.append(f"{directory}: {exc.strerror}")
        shutil.rmtree(self.base, ignore_errors=True)
        if busy:
            raise RuntimeError(f"dockerd left cgroups that still hold tasks: {'; '.join(busy)}")
