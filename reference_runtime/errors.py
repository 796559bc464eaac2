"""Errors raised by the reference runtime.

One root, a shallow tree. Every message is one line that names the problem and, where
there is one, the fix. ``OSError`` is translated into these at the kernel boundary, so
callers (the CLI, the pytest plugin) never see a raw errno.
"""

from __future__ import annotations


class RuntimeSpecError(Exception):
    """Root of every error the reference runtime raises."""


class ConfigError(RuntimeSpecError):
    """The bundle or its config.json is missing or invalid."""


class InvalidIDError(RuntimeSpecError):
    """A container ID is empty, too long, or has characters outside [A-Za-z0-9_.-]."""


class ContainerNotFoundError(RuntimeSpecError):
    """No container with that ID exists under the state root."""


class ContainerExistsError(RuntimeSpecError):
    """A container with that ID already exists under the state root."""


class StateError(RuntimeSpecError):
    """The operation is not allowed in the container's current status."""


class CgroupError(RuntimeSpecError):
    """A cgroup could not be created, configured, joined or removed."""


class NamespaceError(RuntimeSpecError):
    """A namespace could not be created or joined."""


class RootfsError(RuntimeSpecError):
    """The root filesystem or one of its mounts could not be set up."""


class ProcessError(RuntimeSpecError):
    """The container process could not be prepared or started."""


class HookError(RuntimeSpecError):
    """A lifecycle hook failed or timed out."""


class UnsupportedError(RuntimeSpecError):
    """The configuration asks for something this runtime does not implement."""
