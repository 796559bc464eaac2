"""A self-signed serving certificate for the API server, made with the ``openssl`` CLI.

kubectl (client-go) sends bearer tokens only over TLS (kubernetes/kubectl#744), so the
server speaks HTTPS by default: a throwaway P-256 certificate for ``127.0.0.1``, ``::1``
and ``localhost``, trusted through ``certificate-authority-data`` in the kubeconfig.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import ClusterError

__all__ = ["make_self_signed", "server_context"]


def make_self_signed(directory: Path, ips: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``tls.crt`` and ``tls.key`` (mode 0600) into ``directory``; return their paths.

    ``ips`` are more addresses the certificate is valid for (besides loopback)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ClusterError(
            "TLS needs the openssl command (apt-get install openssl), or use plain HTTP"
        )
    cert, key = directory / "tls.crt", directory / "tls.key"
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=reference-cluster",
            "-addext",
            "subjectAltName="
            + ",".join(["IP:127.0.0.1", "IP:::1", "DNS:localhost"] + [f"IP:{ip}" for ip in ips]),
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ClusterError(f"openssl could not make a certificate: {message}")
    key.chmod(0o600)
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context
