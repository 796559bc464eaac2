"""What ``isolated_namespaces`` runs: the namespace kinds and a call's checked arguments."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reference_runtime import kernel

KINDS: dict[str, tuple[str, int]] = {
    # kind: (name under /proc/PID/ns, clone flag); unshare(2) makes the user namespace first
    "pid": ("pid", kernel.CLONE_NEWPID),
    "mount": ("mnt", kernel.CLONE_NEWNS),
    "uts": ("uts", kernel.CLONE_NEWUTS),
    "ipc": ("ipc", kernel.CLONE_NEWIPC),
    "net": ("net", kernel.CLONE_NEWNET),
    "user": ("user", kernel.CLONE_NEWUSER),
    "cgroup": ("cgroup", kernel.CLONE_NEWCGROUP),
}


def current_namespaces(pid: int | str = "self") -> dict[str, str]:
    """The namespace identities of process ``pid``: ``{"uts": "uts:[4026531838]", ...}``."""
    return {kind: os.readlink(f"/proc/{pid}/ns/{name}") for kind, (name, _) in KINDS.items()}


@dataclass(frozen=True)
class Plan:
    """One call's checked arguments: what to run, in which new namespaces, for how long."""

    target: list[str] | Callable[[], Any]
    kinds: tuple[str, ...]
    hostname: str | None
    timeout: float

    def describe(self) -> str:
        target = self.target if isinstance(self.target, list) else _name_of(self.target)
        return f"isolated_namespaces({target!r}, kinds={self.kinds!r})"


def _name_of(func: Callable[[], Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def check_args(
    target: object, kinds: object, hostname: object, timeout: object, default_timeout: float
) -> Plan:
    """The plan of one call, or the built-in exception that shows the right call."""
    __tracebackhide__ = True
    if isinstance(target, str | bytes):
        raise TypeError(
            f"pass the command as an argv list: isolated_namespaces({str(target).split()!r})"
        )
    argv: list[str] | Callable[[], Any]
    if callable(target):
        argv = target
    elif isinstance(target, Sequence) and all(isinstance(a, str) for a in target):
        if not target:
            raise ValueError("isolated_namespaces([]) has no command; use e.g. ['hostname']")
        if any("\0" in arg for arg in target):
            raise ValueError(
                f"an argument holds a NUL character, which no command can receive: {target!r}"
            )
        argv = list(target)
    else:
        raise TypeError(
            "isolated_namespaces(target) takes an argv list such as ['hostname'] or a "
            f"callable with no arguments, got {target!r}"
        )
    if isinstance(kinds, str):
        raise TypeError(f"kinds takes a tuple of names: kinds=({kinds!r},)")
    if not isinstance(kinds, Sequence | set | frozenset):
        raise TypeError(f"kinds takes a tuple of names such as kinds=('pid', 'uts'), got {kinds!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown namespace kind {unknown[0]!r}; use any of {', '.join(KINDS)}")
    if not kinds:
        raise ValueError("kinds=() makes no new namespace; use e.g. kinds=('pid', 'uts')")
    ordered = tuple(k for k in KINDS if k in kinds)
    if hostname is not None:
        if not isinstance(hostname, str):
            raise TypeError(f"hostname takes a string such as hostname='box', got {hostname!r}")
        if "uts" not in ordered:
            wanted = (*ordered, "uts")
            raise ValueError(f"hostname= needs a new uts namespace: kinds={wanted!r}")
        if not 0 < len(hostname.encode()) <= 64:
            raise ValueError(f"hostname must be 1-64 bytes, got {hostname!r}")
    if timeout is None:
        timeout = default_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"timeout takes positive seconds such as timeout=10, got {timeout!r}")
    return Plan(argv, ordered, hostname, float(timeout))


def identity_maps() -> list[tuple[str, str]]:
    """The files under ``/proc/PID/`` and their text that map a new user namespace's ids."""
    if os.geteuid() == 0:
        return [("uid_map", "0 0 4294967295\n"), ("gid_map", "0 0 4294967295\n")]
    # Unprivileged: only our own ids can be mapped, and setgroups must be denied first.
    return [
        ("uid_map", f"0 {os.geteuid()} 1\n"),
        ("setgroups", "deny"),
        ("gid_map", f"0 {os.getegid()} 1\n"),
    ]
