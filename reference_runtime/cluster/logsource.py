"""Container logs on disk, served by the API server's ``pods/log``.

Node agents write each container's stdout and stderr to
``<logs>/<namespace>_<pod>_<uid>/<container>/<restart>.log`` (as kubelet does under
``/var/log/pods``) and create ``<restart>.exited`` when that run ends. ``FileLogSource``
reads the newest run (or, with ``previous``, the one before) and, with ``follow``, keeps
reading until that run ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .api.logs import LogOptions
from .errors import BadRequestError

__all__ = ["FileLogSource", "container_log_dir"]

_FOLLOW_POLL = 0.1


def container_log_dir(logs: Path, pod: dict[str, Any], container: str) -> Path:
    m = pod.get("metadata") or {}
    return logs / f"{m.get('namespace', '')}_{m.get('name', '')}_{m.get('uid', '')}" / container


def _runs(directory: Path) -> list[int]:
    try:
        return sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())
    except OSError:
        return []


class FileLogSource:
    """Reads the log files node agents write under ``logs``."""

    def __init__(self, logs: Path) -> None:
        self.logs = Path(logs)

    def read(self, pod: dict[str, Any], container: str, options: LogOptions) -> Iterator[bytes]:
        directory = container_log_dir(self.logs, pod, container)
        runs = _runs(directory)
        name = (pod.get("metadata") or {}).get("name", "")
        if options.previous:
            if len(runs) < 2:
                raise BadRequestError(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            run = runs[-2]
        elif runs:
            run = runs[-1]
        else:
            raise BadRequestError(
                f'container "{container}" in pod "{name}" is waiting to start: no logs yet'
            )
        return self._read(directory, run, options)

    def _read(self, directory: Path, run: int, options: LogOptions) -> Iterator[bytes]:
        path = directory / f"{run}.log"
        data = path.read_bytes()
        if options.tail_lines is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-options.tail_lines :] if options.tail_lines else [])
        if options.limit_bytes is not None:
            data = data[: options.limit_bytes]
        yield data
        if not options.follow or options.limit_bytes is not None:
            return
        offset = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(offset)
            while True:
                chunk = f.read(65536)
                if chunk:
                    yield chunk
                    continue
                if (directory / f"{run}.exited").exists() or _runs(directory)[-1:] != [run]:
                    yield f.read()
                    return
                yield b""  # lets the server notice it is stopping
                time.sleep(_FOLLOW_POLL)
