"""An etcd a cluster starts and owns (``store="etcd"``): Debian's etcd on loopback.

Its data lives in ``<cluster>/etcd/data`` and its log in ``<cluster>/etcd/etcd.log``;
client and peer ports are random free ports on 127.0.0.1. ``start_etcd`` can start it
again on the same client URL (``ClusterHandle.start_store``) with the same data.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import time
import urllib.parse
from pathlib import Path

from .errors import ClusterError
from .procs import ProcessRecord, spawn_detached

__all__ = ["start_etcd"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("POST", "/v3/kv/range", b'{"key":"AA=="}')
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False  # not listening yet


def start_etcd(
    directory: Path, deadline: float, *, url: str | None = None
) -> tuple[ProcessRecord, str]:
    """Start etcd with its data in ``directory``; wait until it answers; (record, URL)."""
    etcd = shutil.which("etcd")
    if etcd is None:
        raise ClusterError("store 'etcd' needs the etcd command (apt-get install etcd-server)")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    client = urllib.parse.urlsplit(url).port if url else None
    client = client or _free_port()
    peer = _free_port()
    proc, record = spawn_detached(
        [
            etcd,
            "--name=reference",
            f"--data-dir={directory / 'data'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=reference=http://127.0.0.1:{peer}",
            "--log-level=error",
        ],
        what="etcd",
        log=directory / "etcd.log",
    )
    while not _answers(client):
        if proc.poll() is not None or time.monotonic() > deadline:
            record.stop(2.0)
            raise ClusterError(f"etcd did not start; see {directory / 'etcd.log'}")
        time.sleep(0.02)
    return record, f"etcd://127.0.0.1:{client}"
