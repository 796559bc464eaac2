"""Helpers for tests of (and against) the reference cluster: a throwaway etcd on loopback.

``running_etcd()`` starts Debian's ``etcd`` on 127.0.0.1 with random free ports and a
temporary data directory, yields its ``etcd://`` URL, and stops it by PID and removes the
directory afterwards, whatever happens.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

__all__ = ["ETCD", "KUBECTL", "free_port", "running_etcd"]

ETCD = shutil.which("etcd")
KUBECTL = shutil.which("kubectl")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_etcd() -> Iterator[str]:
    """Start etcd on 127.0.0.1 with random ports and a temporary data dir; yield its URL."""
    if ETCD is None:
        raise RuntimeError("etcd is not installed (Debian package etcd-server)")
    tmp = tempfile.mkdtemp(prefix="etcd-test-")
    client, peer = free_port(), free_port()
    log = open(os.path.join(tmp, "etcd.log"), "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            ETCD,
            "--name=test",
            f"--data-dir={tmp}/data",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=test=http://127.0.0.1:{peer}",
            "--log-level=error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {proc.returncode}; see {tmp}/etcd.log")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", client, timeout=1)
                conn.request("POST", "/v3/kv/range", b'{"key":"AA=="}')
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass  # not listening yet: retry until the deadline
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not answer within 15 s; see {tmp}/etcd.log")
            time.sleep(0.05)
        yield f"etcd://127.0.0.1:{client}"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
