"""Kubeconfig files for clients of the reference cluster (YAML, written by hand)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

__all__ = ["kubeconfig_text", "write_kubeconfig"]


def kubeconfig_text(
    url: str, token: str, name: str = "reference", *, ca_cert: bytes | None = None
) -> str:
    """A kubeconfig with one cluster, user and context, all called ``name``."""
    q = json.dumps  # a JSON string is a valid YAML scalar, with any character quoted
    ca = ""
    if ca_cert is not None:
        ca = f"    certificate-authority-data: {base64.b64encode(ca_cert).decode()}\n"
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {q(name)}\n"
        "  cluster:\n"
        f"    server: {q(url)}\n"
        f"{ca}"
        "contexts:\n"
        f"- name: {q(name)}\n"
        "  context:\n"
        f"    cluster: {q(name)}\n"
        f"    user: {q(name)}\n"
        "    namespace: default\n"
        f"current-context: {q(name)}\n"
        "preferences: {}\n"
        "users:\n"
        f"- name: {q(name)}\n"
        "  user:\n"
        f"    token: {q(token)}\n"
    )


def write_kubeconfig(
    path: str | Path,
    url: str,
    token: str,
    name: str = "reference",
    *,
    ca_cert: bytes | None = None,
) -> Path:
    """Write a kubeconfig readable by its owner only (it holds the token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(kubeconfig_text(url, token, name, ca_cert=ca_cert))
    os.replace(tmp, path)
    return path
