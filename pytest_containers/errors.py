"""Errors raised by pytest-containers' adapters and fixtures.

One root, a shallow tree, one-line messages that say what to do. ``OSError`` from a
runtime binary, a socket or the docker SDK is translated into these where it happens,
so a test sees the same exception whichever runtime is under test.
"""

from __future__ import annotations


class ContainersError(Exception):
    """Root of every error pytest-containers raises."""


class RuntimeUnavailableError(ContainersError):
    """The chosen runtime is not installed, or its engine does not answer."""


class RuntimeCommandError(ContainersError):
    """The runtime refused or failed a verb; the message carries the runtime's own words."""

    def __init__(self, verb: str, container_id: str, message: str) -> None:
        self.verb = verb
        self.container_id = container_id
        self.runtime_message = message
        super().__init__(
            f"{verb} {container_id}: {message}" if container_id else f"{verb}: {message}"
        )


class ContainerNotFoundError(RuntimeCommandError):
    """No container with that ID exists for this runtime (already deleted, or never made)."""


class NotApplicableError(ContainersError):
    """The runtime cannot express what a test asks for; reported "not applicable", never passed."""

    def __init__(self, feature: str, reason: str) -> None:
        self.feature = feature
        self.reason = reason
        super().__init__(f"{feature} is not applicable: {reason}")
