"""Seccomp (config-linux.md "Seccomp"): build the filter, load it, hand its listener over.

The filter is built by the runtime during ``create``, before anything is made, so an
architecture or flag that libseccomp cannot express is an error that leaves nothing
behind. The container init, a fork of the runtime, inherits the built context and
only loads it, as late as it can (see ``init``): without ``noNewPrivileges`` loading
needs CAP_SYS_ADMIN, so it comes before the capabilities are dropped; with it, after
the credentials, right before the init reports ready. Neither libseccomp nor the
filter is looked up in the container's root: the library is opened by the runtime.

With SCMP_ACT_NOTIFY the init sends the listener descriptor to the runtime over its
socket pair right after loading (that ``sendmsg`` is the only system call it makes
before the hand-off), and the runtime sends the container process state with the
descriptor to ``listenerPath`` (``send_state``), as runc does from its side of the
sync pipe. A notified system call of the init's after that waits for the listener.
"""

from __future__ import annotations

import _socket

from . import _lite, kernel, libseccomp
from .errors import ConfigError, ProcessError, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .seccomp_config import Seccomp, SeccompRule

# What the init calls between loading the filter and exec'ing the program (traced on
# x86_64): the hand-off and "ready", the start socket, the PATH lookup, execve itself.
INIT_SYSCALLS = (
    *("sendmsg", "sendto", "close", "rt_sigaction", "accept4", "getsockname", "getsockopt"),
    *("recvfrom", "chdir", "rt_sigprocmask", "newfstatat", "access", "execve"),
)
LISTENER_TIMEOUT = 10.0  # seconds to connect and send the state to listenerPath
_EPERM = 1

_ACTIONS = {
    "SCMP_ACT_KILL": libseccomp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": libseccomp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": libseccomp.ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": libseccomp.ACT_TRAP,
    "SCMP_ACT_ERRNO": libseccomp.ACT_ERRNO,
    "SCMP_ACT_TRACE": libseccomp.ACT_TRACE,
    "SCMP_ACT_ALLOW": libseccomp.ACT_ALLOW,
    "SCMP_ACT_LOG": libseccomp.ACT_LOG,
    "SCMP_ACT_NOTIFY": libseccomp.ACT_NOTIFY,
}
_OPS = {
    "NE": libseccomp.CMP_NE,
    "LT": libseccomp.CMP_LT,
    "LE": libseccomp.CMP_LE,
    "EQ": libseccomp.CMP_EQ,
    "GE": libseccomp.CMP_GE,
    "GT": libseccomp.CMP_GT,
    "MASKED_EQ": libseccomp.CMP_MASKED_EQ,
}
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": libseccomp.ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": libseccomp.ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": libseccomp.ATTR_CTL_SSB,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": libseccomp.ATTR_CTL_WAITKILL,
}


def action_value(action: str, errno_ret: int | None) -> int:
    """The filter's return value for ``action`` (errnoRet defaults to EPERM)."""
    value = _ACTIONS[action]
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (_EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


class Filter:
    """A built libseccomp filter context, owned by the runtime until ``release``."""

    def __init__(self, spec: Seccomp, ctx: int) -> None:
        self.spec = spec
        self.ctx = ctx

    def load(self) -> int | None:
        """Install the filter on the calling process; the listener fd with NOTIFY rules."""
        libseccomp.load(self.ctx)
        return libseccomp.notify_fd(self.ctx) if self.spec.notifies else None

    def release(self) -> None:
        if self.ctx:
            libseccomp.release(self.ctx)
            self.ctx = 0


def build(spec: Seccomp) -> Filter:
    """Turn a validated ``linux.seccomp`` into a filter ready to load."""
    __tracebackhide__ = True
    try:
        libseccomp.library()
    except OSError as exc:
        raise UnsupportedError(f"linux.seccomp needs libseccomp: {exc.strerror}") from None
    default = action_value(spec.default_action, spec.default_errno_ret)
    ctx = libseccomp.new_filter(default)
    built = Filter(spec, ctx)
    try:
        _configure(ctx, spec)
        for i, rule in enumerate(spec.syscalls):
            action = action_value(rule.action, rule.errno_ret)
            if action != default:
                # libseccomp refuses a rule with the default action; it changes nothing
                _add_rule(ctx, action, rule, f"linux.seccomp.syscalls[{i}]")
    except BaseException:
        built.release()
        raise
    return built


def _configure(ctx: int, spec: Seccomp) -> None:
    __tracebackhide__ = True
    # the real errno of a failed load (EPERM, say) rather than libseccomp's ECANCELED
    libseccomp.set_attr(ctx, libseccomp.ATTR_API_SYSRAWRC, 1, "seccomp_attr_set")
    # noNewPrivileges is the process's setting, not libseccomp's default to impose
    libseccomp.set_attr(ctx, libseccomp.ATTR_CTL_NNP, 0, "seccomp_attr_set")
    for name in spec.architectures:
        token = libseccomp.resolve_arch(name.lower())
        if not token:
            raise UnsupportedError(
                f"linux.seccomp.architectures: libseccomp {libseccomp.version()} does not "
                f"know SCMP_ARCH_{name}"
            )
        try:
            libseccomp.add_arch(ctx, token)
        except OSError as exc:
            raise ConfigError(f"linux.seccomp.architectures: SCMP_ARCH_{name}: {exc}") from None
    for flag in spec.flags:
        try:
            libseccomp.set_attr(ctx, _FLAGS[flag], 1, flag)
        except OSError:
            raise UnsupportedError(
                f"linux.seccomp.flags: {flag} is not supported by libseccomp "
                f"{libseccomp.version()} on this kernel"
            ) from None


def _add_rule(ctx: int, action: int, rule: SeccompRule, where: str) -> None:
    __tracebackhide__ = True
    conditions = [
        libseccomp.ArgCmp(arg.index, _OPS[arg.op], arg.value, arg.value_two) for arg in rule.args
    ]
    indexes = [arg.index for arg in rule.args]
    # libseccomp refuses two conditions on one argument in a rule. As runc does, such a
    # rule becomes one rule per condition (the action applies when any of them matches).
    groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
    for name in rule.names:
        number = libseccomp.resolve_syscall(name)
        if number == libseccomp.NR_SCMP_ERROR:
            # A name this libseccomp (or architecture) does not know is skipped, as runc
            # does: profiles list syscalls of newer kernels. The spec does not say.
            continue
        for group in groups:
            try:
                libseccomp.add_rule(ctx, action, number, group, f"{where} ({name})")
            except OSError as exc:
                raise ConfigError(f"{where}: cannot add the rule for {name}: {exc}") from None


def send_state(spec: Seccomp, fd: int, pid: int, state: dict[str, Any]) -> None:
    """Send the container process state and the listener ``fd`` to ``listenerPath``:
    one new connection, the descriptor with the first ``sendmsg``, then closed."""
    __tracebackhide__ = True
    document: dict[str, Any] = {
        "ociVersion": state["ociVersion"],
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    }
    if spec.listener_metadata is not None:
        document["metadata"] = spec.listener_metadata
    data = _lite.dumps(document).encode()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(LISTENER_TIMEOUT)
        sock.connect(spec.listener_path or "")
        kernel.send_fd(sock, data, fd)
    except OSError as exc:
        raise ProcessError(
            f"cannot send the seccomp listener to linux.seccomp.listenerPath "
            f"{spec.listener_path}: {exc.strerror or exc}"
        ) from None
    finally:
        sock.close()
