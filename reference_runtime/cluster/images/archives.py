"""Read an image archive: an OCI image layout, a ``docker save`` archive or a rootfs tarball.

``read_archive(path)`` looks inside the (optionally gzip-compressed) tar and returns a
``Source``: the format, the image ID, the image config and the layers, lowest first,
each with the digests it must have. ``unpack(source, writer)`` streams every layer
through its decompressor into a ``LayerWriter`` and checks, on the way, the digest and
size of every blob (OCI: the descriptor's ``digest``/``size``; both formats: the config's
``rootfs.diff_ids`` for the uncompressed layer). Any damage (truncated data, a missing
blob, a digest that does not match) is an ``ImageFormatError`` of one line.

- OCI image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``): the index's one
  manifest (nested indexes are followed; with several, the one for this machine's
  platform, or the one whose ``org.opencontainers.image.ref.name`` is the tag asked for);
  layers ``tar``, ``tar+gzip`` (OCI and Docker media types); zstd is refused.
- ``docker save`` (``manifest.json``, the config JSON, one tar per layer): the entry whose
  ``RepoTags`` holds the name asked for, or the only one. The image ID is the config's
  digest, as Docker's.
- anything else is a plain root filesystem tarball: one layer; the ID is its digest.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import platform
import re
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import ImageFormatError
from .extract import LayerWriter, clean_name
from .reference import Reference

__all__ = ["Layer", "Source", "read_archive", "unpack"]

_DIGEST = re.compile(r"(sha256):([0-9a-f]{64})|(sha512):([0-9a-f]{128})")
_MANIFESTS = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEXES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_LAYERS = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
_MAX_JSON = 16 << 20  # manifests, indexes and configs are small; refuse to read more
_CHUNK = 1 << 20


@dataclass
class Layer:
    """One layer: how to open its blob, and the digests it must have (empty: unknown)."""

    what: str
    open: Callable[[], IO[bytes]]
    digest: str = ""  # of the blob as stored (compressed or not)
    size: int = -1
    diff_id: str = ""  # of the uncompressed tar


@dataclass
class Source:
    """An image found in an archive, ready to unpack."""

    format: str  # "oci-layout" | "docker-archive" | "rootfs"
    id: str  # "sha256:..." ("" for a rootfs tarball until unpacked)
    config: dict[str, Any] = field(default_factory=dict)
    layers: list[Layer] = field(default_factory=list)
    close: Callable[[], None] = lambda: None  # releases the archive


def read_archive(path: Path, ref: Reference) -> Source:
    """What the archive at ``path`` holds, for the image ``ref`` names."""
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by Source.close or below
    except FileNotFoundError:
        raise ImageFormatError(f"{path}: no such file") from None
    except (tarfile.TarError, EOFError, zlib.error):
        raise ImageFormatError(
            f"{path} is not a tar archive (plain, gzip, bzip2 or xz compressed)"
        ) from None
    try:
        members = {clean_name(m.name, str(path)): m for m in tar.getmembers()}
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        tar.close()
        raise ImageFormatError(f"{path}: damaged tar archive: {_line(exc)}") from None
    archive = _Archive(path, tar, members)
    try:
        if "oci-layout" in members and "index.json" in members:
            source = _oci(archive, ref)
        elif "manifest.json" in members:
            source = _docker(archive, ref)
        else:
            source = None
    except BaseException:
        tar.close()
        raise
    if source is not None:
        source.close = tar.close
        return source
    tar.close()
    return Source("rootfs", "", layers=[Layer(path.name, lambda: open(path, "rb"))])


def unpack(source: Source, writer: LayerWriter) -> str:
    """Apply every layer onto the writer's root, checking digests; the first layer blob's
    digest (a rootfs tarball's ID)."""
    first = ""
    config_diff_ids = (source.config.get("rootfs") or {}).get("diff_ids") or []
    if source.format != "rootfs" and len(config_diff_ids) != len(source.layers):
        raise ImageFormatError(
            f"the image config lists {len(config_diff_ids)} layers, the manifest"
            f" {len(source.layers)}"
        )
    for layer in source.layers:
        try:
            digest = _apply(layer, writer)
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
            raise ImageFormatError(f"{layer.what}: damaged layer: {_line(exc)}") from None
        first = first or digest
    return first


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- reading one layer ----------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    """Reads through ``inner``, hashing and counting every byte."""

    def __init__(self, inner: IO[bytes] | io.BufferedIOBase, algorithm: str = "sha256") -> None:
        self.inner, self.hash, self.count = inner, hashlib.new(algorithm), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.hash.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.readinto(bytearray(_CHUNK)):
            pass

    def digest(self) -> str:
        return f"{self.hash.name}:{self.hash.hexdigest()}"


def _apply(layer: Layer, writer: LayerWriter) -> str:
    algorithm = layer.digest.split(":", 1)[0] if layer.digest else "sha256"
    with contextlib.ExitStack() as stack:
        raw = _Hashing(stack.enter_context(layer.open()), algorithm)
        buffered = io.BufferedReader(raw, _CHUNK)
        magic = buffered.peek(6)[:6]
        stream: io.BufferedIOBase = buffered
        if magic.startswith(b"\x1f\x8b"):
            stream = stack.enter_context(gzip.GzipFile(fileobj=buffered, mode="rb"))
        elif magic.startswith(b"BZh"):
            stream = stack.enter_context(bz2.BZ2File(buffered))
        elif magic.startswith(b"\xfd7zXZ\x00"):
            stream = stack.enter_context(lzma.LZMAFile(buffered))
        elif magic.startswith(b"\x28\xb5\x2f\xfd"):
            raise ImageFormatError(
                f"{layer.what}: zstd-compressed layers are not supported;"
                " save the image with gzip or uncompressed layers"
            )
        plain = _Hashing(stream)
        writer.apply(io.BufferedReader(plain, _CHUNK), layer.what)
        plain.drain()  # the tar's end padding counts in its digest
        while buffered.read(_CHUNK):
            pass
    if layer.digest and raw.digest() != layer.digest:
        raise ImageFormatError(
            f"{layer.what}: digest mismatch: the blob is {raw.digest()}, expected {layer.digest}"
        )
    if layer.size >= 0 and raw.count != layer.size:
        raise ImageFormatError(
            f"{layer.what}: size mismatch: the blob has {raw.count} bytes, expected {layer.size}"
        )
    if layer.diff_id and plain.digest() != layer.diff_id:
        raise ImageFormatError(
            f"{layer.what}: the uncompressed layer is {plain.digest()},"
            f" but the image config says {layer.diff_id}"
        )
    return raw.digest()


# -- the outer archive ----------------------------------------------------------------------


class _Archive:
    def __init__(self, path: Path, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]):
        self.path, self.tar, self.members = path, tar, members

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(clean_name(name, str(self.path)))
        data = self.tar.extractfile(member) if member is not None else None
        if data is None:
            raise ImageFormatError(f"{self.path}: the archive has no file {name!r}")
        return data

    def json(self, name: str, digest: str = "", size: int = -1) -> Any:
        with self.open(name) as f:
            data = f.read(_MAX_JSON + 1)
        if len(data) > _MAX_JSON:
            raise ImageFormatError(f"{self.path}: {name} is too large for a JSON document")
        if digest:
            algorithm, _, hexdigest = digest.partition(":")
            if hashlib.new(algorithm, data).hexdigest() != hexdigest:
                raise ImageFormatError(
                    f"{self.path}: digest mismatch for {name} (expected {digest})"
                )
        if size >= 0 and len(data) != size:
            raise ImageFormatError(f"{self.path}: {name} has {len(data)} bytes, expected {size}")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ImageFormatError(f"{self.path}: {name} is not valid JSON: {exc}") from None


def _blob_name(descriptor: Any, where: str) -> str:
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    match = _DIGEST.fullmatch(digest or "")
    if not match:
        raise ImageFormatError(f"{where}: a descriptor has no valid digest ({digest!r})")
    algorithm, hexdigest = (match[1], match[2]) if match[1] else (match[3], match[4])
    return f"blobs/{algorithm}/{hexdigest}"


def _oci(archive: _Archive, ref: Reference) -> Source:
    layout = archive.json("oci-layout")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise ImageFormatError(f"{archive.path}: oci-layout is not imageLayoutVersion 1.0.0")
    index = archive.json("index.json")
    for _ in range(4):  # index -> (nested index ->) manifest
        descriptor = _pick(index, ref, archive.path)
        name = _blob_name(descriptor, str(archive.path))
        document = archive.json(name, descriptor["digest"], int(descriptor.get("size", -1)))
        media = descriptor.get("mediaType") or document.get("mediaType", "")
        if media in _INDEXES or (not media and "manifests" in document):
            index = document
            continue
        if media not in _MANIFESTS and "layers" not in document:
            raise ImageFormatError(f"{archive.path}: {name} has the unknown media type {media!r}")
        return _from_manifest(archive, document, descriptor["digest"])
    raise ImageFormatError(f"{archive.path}: image indexes nested too deeply")


def _pick(index: Any, ref: Reference, path: Path) -> Any:
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not manifests or not isinstance(manifests, list):
        raise ImageFormatError(f"{path}: the image index lists no manifests")
    if len(manifests) == 1:
        return manifests[0]
    arch = _ARCH.get(platform.machine(), platform.machine())
    mine = [
        m
        for m in manifests
        if (m.get("platform") or {}).get("os", "linux") == "linux"
        and (m.get("platform") or {}).get("architecture", arch) == arch
    ]
    tagged = [
        m
        for m in mine
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        in (ref.tag, ref.name, ref.familiar)
    ]
    for candidates in (tagged, mine):
        if len(candidates) == 1:
            return candidates[0]
    raise ImageFormatError(
        f"{path}: the index holds {len(manifests)} images and none is the only one"
        f" for linux/{arch} tagged {ref.tag!r}"
    )


def _from_manifest(archive: _Archive, manifest: Any, digest: str) -> Source:
    config_descriptor = manifest.get("config") or {}
    config = archive.json(
        _blob_name(config_descriptor, "the manifest's config"),
        config_descriptor["digest"],
        int(config_descriptor.get("size", -1)),
    )
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = []
    for i, descriptor in enumerate(manifest.get("layers") or []):
        name = _blob_name(descriptor, f"layer {i + 1}")
        media = descriptor.get("mediaType", "")
        if media not in _LAYERS:
            raise ImageFormatError(f"layer {i + 1} ({name}): unsupported media type {media!r}")
        layers.append(
            Layer(
                f"layer {i + 1} ({name})",
                lambda name=name: archive.open(name),  # type: ignore[misc]
                descriptor["digest"],
                int(descriptor.get("size", -1)),
                diff_ids[i] if i < len(diff_ids) else "",
            )
        )
    return Source("oci-layout", digest, config, layers)


def _docker(archive: _Archive, ref: Reference) -> Source:
    entries = archive.json("manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ImageFormatError(f"{archive.path}: manifest.json lists no images")
    wanted = {ref.familiar, ref.name}
    tagged = [e for e in entries if wanted & set(e.get("RepoTags") or [])]
    if len(tagged) == 1:
        entry = tagged[0]
    elif len(entries) == 1:
        entry = entries[0]
    else:
        raise ImageFormatError(
            f"{archive.path}: the archive holds {len(entries)} images and none is tagged"
            f" {ref.familiar}"
        )
    config_name = str(entry.get("Config") or "")
    base = config_name.rsplit("/", 1)[-1].removesuffix(".json")
    config_digest = f"sha256:{base}" if re.fullmatch(r"[0-9a-f]{64}", base) else ""
    config = archive.json(config_name, config_digest)
    with archive.open(config_name) as f:
        image_id = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = [
        Layer(
            name,
            lambda name=name: archive.open(name),  # type: ignore[misc]
            diff_id=diff_ids[i] if i < len(diff_ids) else "",
        )
        for i, name in enumerate(entry.get("Layers") or [])
    ]
    return Source("docker-archive", image_id, config, layers)
