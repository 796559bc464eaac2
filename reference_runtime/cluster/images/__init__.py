"""The reference cluster's node-local image store: archives in, read-only root filesystems out.

Layers, bottom up: ``errors``; ``reference`` (image names, normalised as Docker does);
``extract`` (safe layer application with whiteouts); ``archives`` (OCI image layouts,
``docker save`` archives and rootfs tarballs, with digest checks); ``store``
(``ImageStore``: atomic imports, resolve, list, remove); ``cli`` (``reference-cluster
image``).
"""

from __future__ import annotations

from .errors import (
    ImageError,
    ImageFormatError,
    ImageInUseError,
    ImageNameError,
    ImageNotFoundError,
)
from .reference import Reference, parse_reference
from .store import DEFAULT_IMAGE, Image, ImageStore

__all__ = [
    "DEFAULT_IMAGE",
    "Image",
    "ImageError",
    "ImageFormatError",
    "ImageInUseError",
    "ImageNameError",
    "ImageNotFoundError",
    "ImageStore",
    "Reference",
    "parse_reference",
]
