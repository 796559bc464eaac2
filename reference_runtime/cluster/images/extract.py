"""Apply layer tar streams, in order, onto a root filesystem directory, safely.

What a layer may hold, and what happens (the OCI image-spec's ``layer.md``):

- directories, regular files, symbolic links, hard links and FIFOs are created with the
  owner, group, mode (setuid/setgid/sticky included), modification time and extended
  attributes (``SCHILY.xattr.*``) the tar header gives; an entry replaces what a lower
  layer had at that path (a directory only by another directory's metadata);
- ``.wh.NAME`` removes ``NAME`` of a lower layer and ``.wh..wh..opq`` empties its directory
  of everything lower layers put there; whiteouts never touch what the same layer adds,
  whatever their order in the tar, and are never written out;
- character and block devices are *skipped* and counted: a container's ``/dev`` comes from
  its runtime, and a device node in a shared read-only rootfs is a door to the host.

Refused, with ``ImageFormatError`` naming the member: absolute names and ``..`` components,
a member whose path goes through a symbolic link (that could write outside the root),
hard links to anything outside the root or to a directory, symbolic links whose relative
target climbs above the root, and unknown member types. Absolute symlink targets are kept:
they name paths inside the container.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO

from .errors import ImageFormatError

__all__ = ["LayerWriter", "clean_name"]

_OPAQUE = ".wh..wh..opq"
_WHITEOUT = ".wh."
_CHUNK = 1 << 20


def clean_name(name: str, what: str) -> str:
    """A member name as a relative path without ``.``; refuses absolute and ``..`` names."""
    if name.startswith("/"):
        raise ImageFormatError(f"{what}: member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageFormatError(f"{what}: member {name!r} escapes the root with '..'")
    return "/".join(parts)


class LayerWriter:
    """Writes layers onto ``root`` (an empty directory we own), lowest layer first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bytes = 0  # bytes of regular files written
        self.skipped_devices = 0

    def apply(self, stream: IO[bytes], what: str) -> None:
        """Apply one uncompressed layer tar read from ``stream``; ``what`` names it in errors."""
        added: set[str] = {""}  # paths this layer created or replaced, and their parents
        whiteouts: list[tuple[str, str]] = []  # (directory, name or the opaque marker)
        dir_times: list[tuple[str, float]] = []
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = clean_name(member.name, what)
                parent, base = posixpath.split(rel)
                if base.startswith(_WHITEOUT):
                    if base != _OPAQUE and len(base) == len(_WHITEOUT):
                        raise ImageFormatError(f"{what}: whiteout {member.name!r} names nothing")
                    whiteouts.append((parent, base if base == _OPAQUE else base[len(_WHITEOUT) :]))
                    continue
                self._parents(rel, what, added)
                added.add(rel)
                self._write(tar, member, rel, what)
                if member.isdir():
                    dir_times.append((rel, member.mtime))
        for directory, name in whiteouts:
            if name == _OPAQUE:
                self._clear_lower(directory, added, what)
            else:
                self._remove_lower(posixpath.join(directory, name), added, what)
        for rel, mtime in reversed(dir_times):  # children first: they touch their parents
            os.utime(self._path(rel), (mtime, mtime), follow_symlinks=False)

    # -- paths --------------------------------------------------------------------------

    def _path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def _parents(self, rel: str, what: str, added: set[str]) -> None:
        """Make sure every parent of ``rel`` is a real directory (never a symlink)."""
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            sub = "/".join(parts[: i + 1])
            path = self._path(sub)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                added.add(sub)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ImageFormatError(
                    f"{what}: member {rel!r} goes through the symbolic link {sub!r}"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise ImageFormatError(f"{what}: member {rel!r} is under {sub!r}, not a directory")

    def _lexists_inside(self, rel: str) -> bool:
        """Whether ``rel`` exists with no symlink among its parents (whiteout targets)."""
        path = self.root
        for part in rel.split("/")[:-1]:
            path = path / part
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    return False
            except FileNotFoundError:
                return False
        return os.path.lexists(self._path(rel))

    # -- members ------------------------------------------------------------------------

    def _write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str, what: str) -> None:
        path = self._path(rel)
        try:
            existing: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            existing = None
        if member.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                os.unlink(path)
                existing = None
            if existing is None:
                os.mkdir(path, 0o700)
            self._metadata(path, member)
            return
        if member.ischr() or member.isblk():
            self.skipped_devices += 1
            return
        if existing is not None:
            _remove(path, existing)
        if member.isreg():
            source = tar.extractfile(member)
            if source is None:
                raise ImageFormatError(f"{what}: member {member.name!r} has no data")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
            self.bytes += member.size
        elif member.issym():
            target = member.linkname
            if not target.startswith("/"):
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
                if resolved == ".." or resolved.startswith("../"):
                    raise ImageFormatError(
                        f"{what}: symbolic link {rel!r} -> {target!r} points outside the root"
                    )
            os.symlink(target, path)
        elif member.islnk():
            target = clean_name(member.linkname, what)
            if not target or not self._lexists_inside(target):
                raise ImageFormatError(
                    f"{what}: hard link {rel!r} -> {member.linkname!r} has no target in the root"
                )
            if stat.S_ISDIR(os.lstat(self._path(target)).st_mode):
                raise ImageFormatError(f"{what}: hard link {rel!r} points to a directory")
            os.link(self._path(target), path, follow_symlinks=False)
            return  # a hard link shares its target's inode and metadata
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise ImageFormatError(
                f"{what}: member {member.name!r} has an unsupported type {member.type!r}"
            )
        self._metadata(path, member)

    def _metadata(self, path: Path, member: tarfile.TarInfo) -> None:
        os.lchown(path, member.uid, member.gid)
        if member.issym():
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
            return
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                try:
                    os.setxattr(
                        path,
                        key.removeprefix("SCHILY.xattr."),
                        value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False,
                    )
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP):
                        raise
                    # this filesystem has no such attribute namespace: nothing to keep
        os.chmod(path, member.mode & 0o7777)  # after chown, which clears setuid and setgid
        if not member.isdir():
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    # -- whiteouts ----------------------------------------------------------------------

    def _remove_lower(self, rel: str, added: set[str], what: str) -> None:
        clean_name(rel, what)
        if rel in added or not self._lexists_inside(rel):
            return  # the same layer's own entry, or nothing below: nothing to hide
        path = self._path(rel)
        _remove(path, os.lstat(path))

    def _clear_lower(self, directory: str, added: set[str], what: str) -> None:
        if directory and not self._lexists_inside(directory):
            return
        path = self._path(directory)
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise ImageFormatError(f"{what}: opaque whiteout in {directory!r}, not a directory")
        with os.scandir(path) as entries:
            for entry in list(entries):
                rel = posixpath.join(directory, entry.name) if directory else entry.name
                if rel not in added:
                    _remove(Path(entry.path), entry.stat(follow_symlinks=False))
                elif entry.is_dir(follow_symlinks=False):
                    self._clear_lower(rel, added, what)


def _remove(path: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
