"""The container process: resource limits, credentials, capabilities and the final exec.

``apply_limits`` runs in the runtime (as host root, through prlimit and procfs) so
that hard limits can be raised even inside a user namespace. ``finalize`` runs in the
container process right before it waits for ``start``: umask, supplementary groups,
gid, uid (keeping capabilities across the switch), the five capability sets and
no_new_privs, in the order the kernel requires.
"""

from __future__ import annotations

import _signal
import errno
import os
import resource

from . import capabilities, kernel
from .errors import ProcessError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Process, Rlimit

_RLIM_INFINITY_SPEC = 2**64 - 1

# Signals the runtime may have changed in its own process; reset before exec.
_RESET_SIGNALS = (
    _signal.SIGPIPE,
    _signal.SIGXFSZ,
    _signal.SIGINT,
    _signal.SIGTERM,
    _signal.SIGCHLD,
)


def _rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value >= 2**63 else value


def apply_limits(pid: int, rlimits: tuple[Rlimit, ...], oom_score_adj: int | None) -> None:
    """Set ``process.rlimits`` and ``process.oomScoreAdj`` on ``pid`` from outside."""
    __tracebackhide__ = True
    for limit in rlimits:
        try:
            resource.prlimit(pid, limit.resource, (_rlim(limit.soft), _rlim(limit.hard)))
        except (OSError, ValueError) as exc:
            raise ProcessError(
                f"cannot set {limit.type} to {limit.soft}/{limit.hard}: {exc}"
            ) from None
    if oom_score_adj is not None:
        try:
            kernel.write_file(f"/proc/{pid}/oom_score_adj", str(oom_score_adj))
        except OSError as exc:
            raise ProcessError(f"cannot set oomScoreAdj {oom_score_adj}: {exc.strerror}") from None


def apply_scheduling(process: Process, persona: int | None) -> None:
    """The scheduler policy, I/O priority and personality (in the container process,
    before it drops the capabilities some of them need)."""
    __tracebackhide__ = True
    try:
        sched = process.scheduler
        if sched is not None:
            kernel.sched_setattr(
                sched.policy,
                sched.nice,
                sched.priority,
                sched.flags,
                sched.runtime,
                sched.deadline,
                sched.period,
            )
        if process.io_priority is not None:
            kernel.ioprio_set(*process.io_priority)
        if persona is not None:
            kernel.personality(persona)
    except OSError as exc:
        raise ProcessError(
            f"cannot apply the process's scheduling settings: {exc.args[1]}"
        ) from None


def held_capabilities() -> tuple[int, int]:
    """(bounding, permitted) of the calling process: what it can grant (see ``finalize``)."""
    __tracebackhide__ = True
    try:
        bounding = sum(
            1 << cap for cap in range(capabilities.last_cap() + 1) if kernel.capbset_read(cap)
        )
        return bounding, kernel.capget()[1]
    except OSError as exc:
        raise ProcessError(f"cannot read the runtime's own capabilities: {exc.strerror}") from None


def finalize(process: Process, held: tuple[int, int] | None = None) -> list[str]:
    """Drop to the configured user and capabilities (in the container process).

    ``held`` is ``held_capabilities()``, read before a seccomp filter was loaded: the
    capabilities it lacks are skipped, each with a warning (returned), as config.md
    asks; without it they fail capset(2)."""
    __tracebackhide__ = True
    user = process.user
    os.umask(user.umask if user.umask is not None else 0o022)
    caps = process.capabilities
    warnings: list[str] = []
    if caps is not None and held is not None:
        caps = capabilities.grantable(caps, held[0], held[1], warnings)
    try:
        if caps is not None:
            last = capabilities.last_cap()
            for cap in range(last + 1):
                if not caps.bounding >> cap & 1:
                    kernel.capbset_drop(cap)
        kernel.setgroups(list(user.additional_gids))
        kernel.setresgid(user.gid)
        if caps is not None:
            kernel.prctl(kernel.PR_SET_KEEPCAPS, 1)
        kernel.setresuid(user.uid)
        if caps is not None:
            kernel.prctl(kernel.PR_SET_KEEPCAPS, 0)
            kernel.capset(caps.effective, caps.permitted, caps.inheritable)
            kernel.ambient_clear()
            # The kernel raises an ambient capability only if it is also permitted and
            # inheritable (``grantable`` warned about the others). runc skips them too,
            # since its own default spec lists ambient capabilities without inheritable.
            raisable = caps.ambient & caps.permitted & caps.inheritable
            for cap in range(64):
                if raisable >> cap & 1:
                    kernel.ambient_raise(cap)
        if process.no_new_privileges:
            kernel.set_no_new_privs()
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EINVAL:
            hint = f" (is uid {user.uid} / gid {user.gid} mapped in the user namespace?)"
        elif exc.errno == errno.EPERM and caps is not None:
            hint = " (ambient and inheritable capabilities must also be permitted)"
        raise ProcessError(f"cannot set the process's credentials: {exc.strerror}{hint}") from None
    return warnings


def environment(process: Process) -> dict[str, str]:
    """``process.env`` as a dict, with HOME added from /etc/passwd when missing (as runc)."""
    env = dict(item.split("=", 1) for item in process.env)
    if "HOME" not in env:
        env["HOME"] = _home_of(process.user.uid)
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:  # no passwd file in the rootfs: fall back to /
        pass
    return "/"


def reset_signals() -> None:
    """Give the program the signal dispositions and mask of a fresh process."""
    for sig in _RESET_SIGNALS:
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def _find_program(program: str, env: dict[str, str]) -> str:
    """Look ``program`` up in the container's PATH, as execvp(3) does.

    Not ``os.execvpe``: it imports ``warnings`` on first use, and this runs after
    pivot_root, where the interpreter's own modules are out of reach.
    """
    if "/" in program:
        return program
    for directory in env.get("PATH", os.defpath).split(":"):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(2, "No such file or directory", program)


def execute(process: Process, env: dict[str, str]) -> None:
    """Replace the current process with the container's program; raises on failure."""
    __tracebackhide__ = True
    program = process.args[0]
    try:
        os.chdir(process.cwd)
    except OSError as exc:
        raise ProcessError(f"cannot enter process.cwd {process.cwd}: {exc.strerror}") from None
    reset_signals()
    try:
        os.execve(_find_program(program, env), list(process.args), env)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ProcessError(
                f"executable {program!r} not found in the container (PATH={env.get('PATH', '')})"
            ) from None
        raise ProcessError(f"cannot execute {program!r}: {exc.strerror}") from None
