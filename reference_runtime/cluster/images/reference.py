"""Image references, normalised as Docker and Kubernetes do.

``busybox``, ``busybox:latest``, ``library/busybox`` and ``docker.io/library/busybox:latest``
are one image: a reference without a registry domain is on ``docker.io``, a one-component
name there is under ``library/``, and the tag defaults to ``latest``. The first component
is a domain if it has a ``.`` or a ``:`` or is ``localhost`` (distribution/reference's
rule). A reference may end in ``@sha256:HEX``, the image's ID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ImageNameError

__all__ = ["DEFAULT_DOMAIN", "Reference", "parse_reference"]

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::\d+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
_MAX = 255


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: ``domain/path:tag`` and, optionally, a digest."""

    domain: str
    path: str
    tag: str
    digest: str = ""

    @property
    def name(self) -> str:
        """The full name with its tag, as the store keys images: docker.io/library/x:latest."""
        return f"{self.domain}/{self.path}:{self.tag}"

    @property
    def familiar(self) -> str:
        """The short form Docker prints: ``busybox:latest``, ``example.com/a/b:1``."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            path = path.removeprefix("library/")
            return f"{path}:{self.tag}"
        return f"{self.domain}/{path}:{self.tag}"


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``NAME[:TAG][@DIGEST]``; ``ImageNameError`` if malformed."""
    original = text
    text = text.strip()
    if not text or len(text) > _MAX:
        raise ImageNameError(
            f"invalid image reference {original!r}: use NAME[:TAG], e.g. busybox:1.36"
        )
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise ImageNameError(
                f"invalid image reference {original!r}: a digest is sha256:<64 hex digits>"
            )
    tag = "latest"
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise ImageNameError(f"invalid image reference {original!r}: bad tag {tag!r}")
    domain, _, rest = text.partition("/")
    if rest and ("." in domain or ":" in domain or domain == "localhost"):
        if not _DOMAIN.fullmatch(domain):
            raise ImageNameError(f"invalid image reference {original!r}: bad registry {domain!r}")
        path = rest
    else:
        domain, path = DEFAULT_DOMAIN, text
    if domain in (DEFAULT_DOMAIN, "index.docker.io") and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise ImageNameError(
                f"invalid image reference {original!r}: name components are lowercase"
                f" letters, digits and separators (. _ __ -), not {component!r}"
            )
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    return Reference(domain, path, tag, digest)
