"""A ``--cluster`` value: ``reference`` or ``kubeconfig[:PATH]``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import ClusterUnavailableError
from .kubeconfig import default_kubeconfig

__all__ = ["ClusterChoice"]

USAGE = "reference, kubeconfig or kubeconfig:PATH"


@dataclass(frozen=True)
class ClusterChoice:
    """What ``--cluster`` asked for: ``kind`` and, for ``kubeconfig``, the file."""

    kind: str
    kubeconfig: Path | None = None

    @classmethod
    def parse(cls, value: str) -> ClusterChoice:
        """``ValueError`` naming the accepted forms on anything else."""
        value = value.strip()
        if value == "reference":
            return cls("reference")
        if value == "kubeconfig":
            return cls("kubeconfig", default_kubeconfig())
        if value.startswith("kubeconfig:"):
            path = value.removeprefix("kubeconfig:")
            if not path:
                raise ValueError(f"kubeconfig: needs a path; the forms are {USAGE}")
            return cls("kubeconfig", Path(path).expanduser().absolute())
        raise ValueError(f"unknown cluster {value!r}; the forms are {USAGE}")

    @property
    def name(self) -> str:
        return "reference" if self.kubeconfig is None else f"kubeconfig:{self.kubeconfig}"

    def check(self) -> None:
        """``ClusterUnavailableError`` if the kubeconfig file is not there."""
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise ClusterUnavailableError(
                f"kubeconfig {self.kubeconfig} does not exist (set KUBECONFIG or give "
                "kubeconfig:PATH)"
            )
