"""Image -> root filesystem for the node agent.

The cluster's image store (``reference_runtime.cluster.images.ImageStore``) answers when
it is there; otherwise ``busybox`` and ``busybox:latest`` resolve to the offline busybox
rootfs that ``rootfs_builder`` builds from the host's busybox-static. Root filesystems are
shared and mounted read-only by containers (a tmpfs on ``/tmp`` is theirs to write).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["ImagePullError", "resolve_image"]

_BUILTIN = ("busybox", "busybox:latest", "docker.io/library/busybox:latest")


class ImagePullError(Exception):
    """The image is not in the store: the container waits with ErrImagePull."""


def resolve_image(image: str, store_root: Path) -> Path:
    """The rootfs directory for ``image``; ``ImagePullError`` (one line) if there is none."""
    store: Any = None
    try:
        images = importlib.import_module("reference_runtime.cluster.images")
        store = images.ImageStore(store_root)
    except ImportError:
        pass  # no image store in this installation: only the built-in busybox
    if store is not None:
        try:
            return Path(store.resolve(image))
        except images.ImageNotFoundError as exc:
            if image not in _BUILTIN:
                raise ImagePullError(str(exc)) from None
    if image in _BUILTIN:
        from ...rootfs_builder import build_rootfs

        return build_rootfs("busybox")
    raise ImagePullError(
        f'failed to pull image "{image}": not found in the image store {store_root}'
        " (no registry is used; import the image first)"
    )
