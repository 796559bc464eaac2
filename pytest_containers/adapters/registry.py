"""From a ``--runtime`` value to an adapter: ``reference``, a runtime's name, ``oci:PATH``
or ``docker``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .base import RuntimeAdapter

OCI_NAMES = ("runc", "crun", "runsc", "youki")
CHOICES = ("reference", *OCI_NAMES, "oci:PATH", "docker")


@dataclass(frozen=True)
class RuntimeChoice:
    """A parsed ``--runtime`` value: ``kind`` is ``reference``, ``oci`` or ``docker``."""

    kind: str
    name: str
    binary: str = ""

    @classmethod
    def parse(cls, value: str) -> RuntimeChoice:
        """``"runc"`` -> oci runc; ``"oci:/opt/bin/youki"`` -> oci at that path."""
        __tracebackhide__ = True
        value = value.strip()
        if value in ("reference", "docker"):
            return cls(value, value)
        if value in OCI_NAMES:
            return cls("oci", value, value)
        if value.startswith("oci:") and len(value) > 4:
            return cls("oci", value, value[4:])
        raise ValueError(f"unknown runtime {value!r}; use --runtime={'|'.join(CHOICES)}")

    def check(self) -> None:
        """Raise ``RuntimeUnavailableError`` naming the fix if the runtime is not here."""
        __tracebackhide__ = True
        if self.kind == "oci":
            from .oci import find_binary

            find_binary(self.binary)
        elif self.kind == "docker":
            open_adapter(self, "").close()


def open_adapter(
    choice: RuntimeChoice | str,
    root: str | os.PathLike[str],
    *,
    workdir: str | os.PathLike[str] | None = None,
    session: str = "",
) -> RuntimeAdapter:
    """An adapter for ``choice`` over the state root ``root`` (ignored by ``docker``,
    which honours ``DOCKER_HOST``). ``workdir`` holds an OCI adapter's scratch files
    (default: a temporary directory removed by ``close``); ``session`` labels docker
    objects. The caller closes the adapter."""
    __tracebackhide__ = True
    if isinstance(choice, str):
        choice = RuntimeChoice.parse(choice)
    if choice.kind == "reference":
        from .reference import ReferenceAdapter

        return ReferenceAdapter(root)
    if choice.kind == "docker":
        from .docker import DockerAdapter

        return DockerAdapter(session=session)
    from .oci import OciAdapter

    return OciAdapter.for_binary(choice.binary, root, name=choice.name, workdir=workdir)
