"""``ImageStore``: a node-local image store in one directory, shared by a cluster's agents.

There is no registry: images come from archives imported with ``import_archive`` (or the
``reference-cluster image import`` command). The layout of ``root``::

    content/<alg>-<hex>/rootfs/       the unpacked root filesystem of the image with that ID
    content/<alg>-<hex>/image.json    its format, size and config (Env, Cmd, ...)
    refs/<name with '/' as '+'>       a symlink to ../content/<alg>-<hex>
    .lock                             held (flock) by whoever changes the store
    .tmp-*                            imports in progress (left by a crash: removed later)

An import unpacks into a ``.tmp-*`` directory of the store and renames it into
``content/``, then points the name's ref at it with an atomic symlink replace, so a
reader sees the old image or the new one, never half of one, and a failed import leaves
nothing. Images with the same ID share one directory.

``resolve(image)`` returns ``content/<id>/rootfs``, shared by every container of that
image: a container must never write it. The node agent uses it as ``root.path`` with
``root.readonly: true`` (a writable ``/tmp`` tmpfs on top); an overlay with a private
upper directory works too. Content no name refers to is removed, unless a running
process has it as its root (``/proc/PID/root``), in which case ``remove`` refuses.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archives import read_archive, unpack
from .errors import ImageFormatError, ImageInUseError, ImageNotFoundError
from .extract import LayerWriter
from .reference import Reference, parse_reference

__all__ = ["DEFAULT_IMAGE", "Image", "ImageStore"]

DEFAULT_IMAGE = "busybox:latest"
_CONFIG_KEYS = ("Env", "Entrypoint", "Cmd", "WorkingDir", "User")


@dataclass(frozen=True)
class Image:
    """An image in the store under one name."""

    name: str  # normalised: docker.io/library/busybox:latest
    id: str  # sha256:... (the manifest's digest, Docker's image ID, or the tarball's)
    format: str  # oci-layout | docker-archive | rootfs
    size: int  # bytes of regular files in the root filesystem
    imported: float  # when the name was last pointed at this image (epoch seconds)
    rootfs: Path
    config: dict[str, Any]

    @property
    def short_name(self) -> str:
        return parse_reference(self.name).familiar


class ImageStore:
    """Images by name, each a read-only root filesystem directory under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def for_cluster(cls, state_dir: Path | str, cluster: str) -> ImageStore:
        """The store of a cluster: ``<state_dir>/<cluster>/images``."""
        return cls(Path(state_dir) / cluster / "images")

    # -- reading ------------------------------------------------------------------------

    def resolve(self, image: str) -> Path:
        """The root filesystem directory of ``image`` (read-only to containers).

        ``ImageNotFoundError`` if it is not in the store; the default image
        (``busybox:latest``) is built offline on first use."""
        return self.get(image).rootfs

    def get(self, image: str) -> Image:
        ref = parse_reference(image)
        if ref.digest:
            content = (self.root / "content" / ref.digest.replace(":", "-", 1)).resolve()
            if (content / "image.json").is_file():
                return self._image(ref.name, content)
        else:
            found = self._lookup(ref)
            if found is not None:
                return found
            if ref.name == parse_reference(DEFAULT_IMAGE).name:
                return self.ensure_default()
        raise ImageNotFoundError(
            f'image "{image}" not found in the node\'s image store;'
            f" import it with: reference-cluster image import {image} TARBALL"
        )

    def list(self) -> list[Image]:
        """Every image by name (the default image is built first if absent)."""
        self.ensure_default()
        images = []
        refs = self.root / "refs"
        for entry in sorted(os.listdir(refs)) if refs.is_dir() else []:
            found = self._lookup(parse_reference(entry.replace("+", "/")))
            if found is not None:
                images.append(found)
        return images

    def _lookup(self, ref: Reference) -> Image | None:
        link = self.root / "refs" / ref.name.replace("/", "+")
        try:
            target = os.readlink(link)
        except (FileNotFoundError, NotADirectoryError):
            return None
        content = (link.parent / target).resolve()
        if not (content / "image.json").is_file():
            return None
        return self._image(ref.name, content, os.lstat(link).st_mtime)

    @staticmethod
    def _image(name: str, content: Path, imported: float = 0.0) -> Image:
        meta = json.loads((content / "image.json").read_text())
        return Image(
            name,
            meta["id"],
            meta["format"],
            meta["size"],
            imported,
            content / "rootfs",
            meta["config"],
        )

    # -- changing -----------------------------------------------------------------------

    def import_archive(self, name: str, path: Path | str) -> Image:
        """Unpack the image archive at ``path`` and store it as ``name`` (NAME[:TAG]).

        ``ImageFormatError`` (one line) for an archive it cannot read or trusts not;
        then nothing is left in the store."""
        ref = parse_reference(name)
        if ref.digest:
            raise ImageFormatError(f"name the image with a tag, not a digest: {name}")
        path = Path(path)
        with self._locked():
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            try:
                content = self._unpack(ref, path, tmp)
                self._point(ref, content)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            self._collect()
        found = self._lookup(ref)
        assert found is not None  # just written, under the lock
        return found

    def remove(self, name: str) -> Image:
        """Forget ``name``; its content goes too unless another name or a container uses it."""
        ref = parse_reference(name)
        with self._locked():
            found = self._lookup(ref)
            if found is None:
                raise ImageNotFoundError(f'image "{name}" is not in the image store')
            content = found.rootfs.parent
            users = _users(content) if _names_of(self.root, content) == [ref.name] else []
            if users:
                raise ImageInUseError(
                    f'image "{name}" is the root of running processes {", ".join(users[:5])};'
                    " delete their pods first"
                )
            (self.root / "refs" / ref.name.replace("/", "+")).unlink()
            self._collect()
        return found

    def ensure_default(self) -> Image:
        """``busybox:latest``, built offline from the host by ``rootfs_builder`` if absent."""
        ref = parse_reference(DEFAULT_IMAGE)
        found = self._lookup(ref)
        if found is not None:
            return found
        from ...rootfs_builder import build_rootfs, export_tarball

        with tempfile.TemporaryDirectory(prefix="reference-cluster-image-") as tmp:
            tarball = export_tarball(build_rootfs("auto"), Path(tmp) / "rootfs.tar")
            with self._locked():
                found = self._lookup(ref)  # another agent may have made it meanwhile
            return found or self.import_archive(DEFAULT_IMAGE, tarball)

    # -- helpers ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        for sub in ("content", "refs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _unpack(self, ref: Reference, path: Path, tmp: Path) -> Path:
        source = read_archive(path, ref)
        try:
            final = self.root / "content" / source.id.replace(":", "-", 1) if source.id else None
            if final is not None and (final / "image.json").is_file():
                return final  # the same image is already here
            rootfs = tmp / "rootfs"
            rootfs.mkdir(mode=0o755)
            writer = LayerWriter(rootfs)
            first = unpack(source, writer)
        finally:
            source.close()
        image_id = source.id or first
        meta = {
            "id": image_id,
            "format": source.format,
            "size": writer.bytes,
            "skipped_devices": writer.skipped_devices,
            "layers": len(source.layers),
            "config": {
                k: v for k, v in (source.config.get("config") or {}).items() if k in _CONFIG_KEYS
            },
        }
        (tmp / "image.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        final = self.root / "content" / image_id.replace(":", "-", 1)
        if (final / "image.json").is_file():
            return final  # a rootfs tarball imported before under another name
        if final.exists():
            shutil.rmtree(final)  # an incomplete directory (cannot happen under the lock)
        os.rename(tmp, final)
        return final

    def _point(self, ref: Reference, content: Path) -> None:
        link = self.root / "refs" / ref.name.replace("/", "+")
        tmp_link = link.with_name(f".{link.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):  # no leftover of a crashed import
            tmp_link.unlink()
        os.symlink(f"../content/{content.name}", tmp_link)
        os.utime(tmp_link, (time.time(), time.time()), follow_symlinks=False)
        os.replace(tmp_link, link)

    def _collect(self) -> None:
        """Remove content no name refers to (and no process runs in), and dead imports."""
        for stale in self.root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)  # we hold the lock: no import runs
        used = {os.readlink(self.root / "refs" / e) for e in os.listdir(self.root / "refs")}
        for content in (self.root / "content").iterdir():
            if f"../content/{content.name}" not in used and not _users(content):
                shutil.rmtree(content)


def _names_of(root: Path, content: Path) -> list[str]:
    """The names that refer to ``content``."""
    refs = root / "refs"
    target = f"../content/{content.name}"
    return [
        entry.replace("+", "/")
        for entry in os.listdir(refs)
        if not entry.startswith(".") and os.readlink(refs / entry) == target
    ]


def _users(content: Path) -> list[str]:
    """PIDs of processes whose root directory is this image's rootfs (running containers).

    A container's ``/proc/PID/root`` reads as ``/`` after ``pivot_root``, so the check
    compares the directory itself: a read-only bind mount has the same device and inode."""
    try:
        st = os.stat(content / "rootfs")
    except FileNotFoundError:
        return []
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            root = os.stat(f"/proc/{pid}/root")
        except OSError:
            continue  # gone, a kernel thread, or not ours to look at: not a container here
        if (root.st_dev, root.st_ino) == (st.st_dev, st.st_ino):
            pids.append(pid)
    return pids
