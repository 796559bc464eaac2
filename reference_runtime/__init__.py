"""The reference OCI runtime.

Layers, bottom up: ``kernel`` (every system call that touches the host) and
``libseccomp`` (the system's libseccomp through ctypes), ``errors``; ``fields``,
``seccomp_config``, ``config``/``spec`` (the bundle), ``state`` (status machine and
state.json), ``cgroups``, ``namespaces``, ``rootfs``, ``process``, ``seccomp``,
``console``, ``hooks``; ``init`` (the forked processes); one module per verb
(``create``, ``start``, ``kill``, ``delete``, ``exec_in``); ``runtime`` (the library
API) and ``cli`` on top.
"""

from .errors import (
    CgroupError,
    ConfigError,
    ContainerExistsError,
    ContainerNotFoundError,
    HookError,
    InvalidIDError,
    NamespaceError,
    ProcessError,
    RootfsError,
    RuntimeSpecError,
    StateError,
    UnsupportedError,
)
from .runtime import DEFAULT_ROOT, Runtime
from .spec import OCI_VERSION, default_spec
from .state import State, Status

__all__ = [
    "DEFAULT_ROOT",
    "OCI_VERSION",
    "CgroupError",
    "ConfigError",
    "ContainerExistsError",
    "ContainerNotFoundError",
    "HookError",
    "InvalidIDError",
    "NamespaceError",
    "ProcessError",
    "RootfsError",
    "Runtime",
    "RuntimeSpecError",
    "State",
    "StateError",
    "Status",
    "UnsupportedError",
    "default_spec",
]
