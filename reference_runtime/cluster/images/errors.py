"""Errors of the image store: one root, one line each, saying what to do."""

from __future__ import annotations

from ..errors import ClusterError

__all__ = [
    "ImageError",
    "ImageFormatError",
    "ImageInUseError",
    "ImageNameError",
    "ImageNotFoundError",
]


class ImageError(ClusterError):
    """The image store could not do what was asked."""


class ImageNameError(ImageError, ValueError):
    """The image reference is not a valid NAME[:TAG][@DIGEST]."""


class ImageNotFoundError(ImageError):
    """No image of that name is in the store; import it first (there is no registry)."""


class ImageFormatError(ImageError):
    """The archive is not an image this store can read, or it is damaged or unsafe."""


class ImageInUseError(ImageError):
    """A running container has the image's root filesystem as its root; stop it first."""
