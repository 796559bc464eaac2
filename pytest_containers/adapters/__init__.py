"""Runtime adapters: one protocol, one implementation per kind of runtime.

Layers, bottom up: ``base`` (the ``RuntimeAdapter`` protocol, ``ExecResult``, the
feature names an adapter may declare unsupported); ``console`` (the console socket and
a container's terminal); ``bundle`` (OCI configs from a few arguments) and ``engine``
(an OCI config as Docker Engine options); ``monitor`` (the
forked monitor of an OCI container); the adapters ``reference``, ``oci`` and
``docker``; ``registry`` (a ``--runtime`` value to an adapter); ``dockerd`` (a
throwaway Docker Engine for tests and benchmarks). The docker SDK is imported only by
``engine``, ``docker`` and ``dockerd``, which this package does not import eagerly.
"""

from .base import (
    CREATED_PROCESS,
    EXIT_STATUS,
    FEATURES,
    HOOKS,
    HOST_KERNEL,
    HOST_PID,
    JOIN_NAMESPACE_PATH,
    RUNTIME_WARNINGS,
    STDIO,
    TERMINAL,
    USER_NAMESPACE,
    ExecResult,
    RuntimeAdapter,
    Stdio,
    TerminalAdapter,
    WarningsAdapter,
    require,
    signal_number,
    terminal_of,
    warnings_of,
)
from .bundle import bundle_config, parse_size
from .console import ConsoleSocket, Terminal
from .oci import OciAdapter
from .reference import ReferenceAdapter
from .registry import CHOICES, RuntimeChoice, open_adapter

__all__ = [
    "CHOICES",
    "CREATED_PROCESS",
    "EXIT_STATUS",
    "FEATURES",
    "HOOKS",
    "HOST_KERNEL",
    "HOST_PID",
    "JOIN_NAMESPACE_PATH",
    "RUNTIME_WARNINGS",
    "STDIO",
    "TERMINAL",
    "USER_NAMESPACE",
    "ConsoleSocket",
    "ExecResult",
    "OciAdapter",
    "ReferenceAdapter",
    "RuntimeAdapter",
    "RuntimeChoice",
    "Stdio",
    "Terminal",
    "TerminalAdapter",
    "WarningsAdapter",
    "bundle_config",
    "open_adapter",
    "parse_size",
    "require",
    "signal_number",
    "terminal_of",
    "warnings_of",
]
