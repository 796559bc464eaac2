"""The ``RuntimeAdapter`` protocol: how every suite talks to the runtime under test.

One adapter object stands for one runtime and one state root (runc's ``--root``, or a
Docker Engine). Container IDs are chosen by the caller and must be unique within that
root; the fixtures make them with ``Ledger.unique_name``.

Who releases what:

- ``create`` makes a container; the caller owns it until ``delete`` returns. A failed
  ``create`` leaves nothing behind. ``run`` creates and deletes its own container.
- ``stdio`` descriptors passed to ``create``/``run`` stay owned by the caller; the
  adapter duplicates what it keeps, so the caller may close them once ``create`` returns.
- ``delete(id, force=True)`` is the one undo: it kills what still runs, removes the
  container and everything the adapter made for it (monitor process, log and exit
  files, engine objects). It raises ``ContainerNotFoundError`` when the container is
  already gone, which every undo path treats as success.
- ``close()`` releases the adapter itself (client connections, scratch directories);
  it does not delete containers.

Errors: ``ContainerNotFoundError`` (no such container), ``RuntimeCommandError`` (the
runtime refused or failed; the message quotes the runtime), ``NotApplicableError``
(the runtime cannot express the request), ``TimeoutError`` from ``wait``.

Terminals and warnings (``TerminalAdapter``, ``WarningsAdapter``; reach them through
``terminal_of`` and ``warnings_of``, which answer ``NotApplicableError`` for an
adapter without them):

- A bundle whose config.json says ``process.terminal: true`` is created with a console
  socket (runc's ``--console-socket``): the adapter receives the pty master before
  ``create`` returns and keeps it; ``terminal(id)`` hands it out as a ``Terminal``
  (read what the container wrote to its terminal, write its input). The container's
  stdio are then the pty, and the ``stdio`` given to ``create`` are not used; ``run``
  copies the terminal's output to ``stdio[1]``. The master is closed by ``delete``.
- ``warnings()`` are the messages the runtime logged at level "warning" during the
  adapter's last verb (``create``, ``start``, ...), in order; empty when it logged none.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from ..errors import NotApplicableError

if TYPE_CHECKING:
    from .console import Terminal

Stdio = tuple[int, int, int]
"""File descriptors for the container's stdin, stdout and stderr."""

# What an adapter may be unable to express. Each adapter's ``unsupported`` maps some
# of these to the reason; the conformance suites report the requirements that need
# them as "not applicable" with that reason.
CREATED_PROCESS = "created-process"
HOST_PID = "host-pid"
HOST_KERNEL = "host-kernel"
HOOKS = "hooks"
JOIN_NAMESPACE_PATH = "join-namespace-path"
USER_NAMESPACE = "user-namespace"
STDIO = "stdio"
EXIT_STATUS = "exit-status"
TERMINAL = "terminal"
RUNTIME_WARNINGS = "runtime-warnings"

FEATURES: dict[str, str] = {
    CREATED_PROCESS: "a created container's process exists and waits for start (it has a PID)",
    HOST_PID: "the container's init is a host process, with its namespaces at /proc/PID/ns",
    HOST_KERNEL: "the container runs on the host kernel: /proc, /sys and cgroup files are real",
    HOOKS: "the OCI lifecycle hooks of config.json run",
    JOIN_NAMESPACE_PATH: "a namespace given by path in config.json is joined, not created",
    USER_NAMESPACE: "a user namespace with the config's uid and gid mappings",
    STDIO: "the container's stdin, stdout and stderr are the descriptors given to create",
    EXIT_STATUS: "wait() returns the exit status of a container made by create",
    TERMINAL: "process.terminal: the container's stdio are a pty whose master the caller gets",
    RUNTIME_WARNINGS: "the warnings the runtime logged during a verb can be read",
}


class ExecResult(NamedTuple):
    """What ``exec`` returns: the command's exit status (128+N for signal N) and output."""

    exit_code: int
    stdout: str
    stderr: str


@runtime_checkable
class RuntimeAdapter(Protocol):
    """One container runtime, driven through the verbs of runtime-spec ``runtime.md``."""

    name: str
    """How ``--runtime`` names it: ``reference``, ``runc``, ``oci:/path/to/bin``, ``docker``."""

    root: str
    """The state root (``--root``), or the engine's address for ``docker``."""

    unsupported: Mapping[str, str]
    """Feature (see ``FEATURES``) -> why this runtime cannot express it. Empty for none."""

    def version(self) -> str:
        """The runtime's own version string, for reports."""
        ...

    def create(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> None:
        """Create ``container_id`` from the bundle directory; it is ``created`` on return.

        ``stdio`` defaults to /dev/null for all three. Raises ``RuntimeCommandError``
        (the ID exists, the config is refused...) after removing whatever it made.
        """
        ...

    def start(self, container_id: str) -> None:
        """Run the user program of a created container."""
        ...

    def state(self, container_id: str) -> dict[str, Any]:
        """The runtime-spec state document: ``ociVersion``, ``id``, ``status``
        (created|running|stopped, or the runtime's own such as ``paused``), ``pid``
        (when created or running), ``bundle``, ``annotations``, plus what the runtime adds."""
        ...

    def kill(self, container_id: str, signal: int | str = _signal.SIGTERM) -> None:
        """Send ``signal`` (a number, ``"KILL"`` or ``"SIGKILL"``) to the container process."""
        ...

    def delete(self, container_id: str, force: bool = False) -> None:
        """Remove a stopped container; ``force`` kills it first (runc's ``--force``).
        Raises ``ContainerNotFoundError`` if it does not exist."""
        ...

    def run(
        self, container_id: str, bundle: str | os.PathLike[str], *, stdio: Stdio | None = None
    ) -> int:
        """Create, start, wait for and delete a container; its exit status (128+N for
        signal N). Nothing is left behind, whatever happens."""
        ...

    def exec(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Sequence[str] | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        """Run ``argv`` in a running container (``env`` as ``NAME=value`` strings added to
        the container's); returns its status and output once it exits."""
        ...

    def host_pid(self, container_id: str) -> int:
        """The host PID of the container's init; ``NotApplicableError`` if there is none
        (``HOST_PID`` unsupported)."""
        ...

    def wait(self, container_id: str, timeout: float | None = None) -> int:
        """Block until the container process exits; its exit status (128+N for signal N).
        ``TimeoutError`` after ``timeout`` seconds. Callable again after it returned."""
        ...

    def close(self) -> None:
        """Release the adapter's own resources (not the containers). Safe to call twice."""
        ...


@runtime_checkable
class TerminalAdapter(Protocol):
    """An adapter that creates containers with ``process.terminal`` (see the module doc)."""

    def terminal(self, container_id: str) -> Terminal:
        """The terminal of a container created with ``process.terminal`` (owned by the
        adapter until ``delete``); ``RuntimeCommandError`` if it was made without one."""
        ...


@runtime_checkable
class WarningsAdapter(Protocol):
    """An adapter that reads the runtime's own log (see the module doc)."""

    def warnings(self) -> list[str]:
        """The warnings the runtime logged during the adapter's last verb."""
        ...


def terminal_of(adapter: RuntimeAdapter, container_id: str) -> Terminal:
    """``adapter.terminal(id)``; ``NotApplicableError`` if the adapter has no terminals."""
    __tracebackhide__ = True
    require(adapter, TERMINAL)
    if not isinstance(adapter, TerminalAdapter):
        raise NotApplicableError(TERMINAL, f"{adapter.name}: the adapter has no console socket")
    return adapter.terminal(container_id)


def warnings_of(adapter: RuntimeAdapter) -> list[str]:
    """``adapter.warnings()``; ``NotApplicableError`` if the adapter cannot read them."""
    __tracebackhide__ = True
    require(adapter, RUNTIME_WARNINGS)
    if not isinstance(adapter, WarningsAdapter):
        raise NotApplicableError(
            RUNTIME_WARNINGS, f"{adapter.name}: the adapter does not read the runtime's log"
        )
    return adapter.warnings()


def require(adapter: RuntimeAdapter, feature: str) -> None:
    """Raise ``NotApplicableError`` if ``adapter`` cannot express ``feature``."""
    __tracebackhide__ = True
    if feature not in FEATURES:
        raise ValueError(
            f"unknown feature {feature!r}; use one of pytest_containers.adapters.FEATURES: "
            + ", ".join(sorted(FEATURES))
        )
    reason = adapter.unsupported.get(feature)
    if reason is not None:
        raise NotApplicableError(feature, f"{adapter.name}: {reason}")


def signal_number(sig: int | str) -> int:
    """``9``, ``"9"``, ``"KILL"`` or ``"SIGKILL"`` -> 9."""
    __tracebackhide__ = True
    if isinstance(sig, int) or sig.isdigit():
        number = int(sig)
        if not 0 < number < _signal.NSIG:
            raise ValueError(f"signal {sig} is out of range; use kill(id, 1..{_signal.NSIG - 1})")
        return number
    name = sig.upper() if sig.upper().startswith("SIG") else "SIG" + sig.upper()
    try:
        return int(_signal.Signals[name])
    except KeyError:
        raise ValueError(
            f"unknown signal {sig!r}; use kill(id, 'TERM'), kill(id, 'SIGKILL') or a number"
        ) from None


def exit_status(wait_status: int) -> int:
    """A ``waitpid`` status as a shell reports it: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)
