"""Where ``pods/<name>/log`` reads from: a pluggable ``LogSource``.

Until node agents exist, ``PlaceholderLogSource`` answers with one line saying so. A
node agent (or a test) provides its own source: ``ApiServer(log_source=...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LogOptions", "LogSource", "PlaceholderLogSource"]


@dataclass(frozen=True)
class LogOptions:
    """The query parameters of a log request, validated."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None


class LogSource(Protocol):
    def read(self, pod: dict[str, Any], container: str, options: LogOptions) -> Iterator[bytes]:
        """Chunks of the container's log; with ``options.follow``, until it ends."""
        ...


class PlaceholderLogSource:
    """No node agent yet: a single line that says so."""

    def read(self, pod: dict[str, Any], container: str, options: LogOptions) -> Iterator[bytes]:
        name = pod.get("metadata", {}).get("name", "")
        yield f"(no logs: no node agent runs container {container} of pod {name} yet)\n".encode()
