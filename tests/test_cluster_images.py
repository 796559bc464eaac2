"""The reference cluster's image store: real archives in, root filesystems that really run.

Archives are built here: a rootfs tarball by ``rootfs_builder``, OCI image layouts by hand
(following the image-spec, with whiteouts and gzip layers), and a ``docker save`` archive
from a real ``dockerd --bridge=none --iptables=false`` that this module starts (skipped,
with the reason, without one). Imported images run ``sh -c 'echo ok'`` in the reference
runtime or runc with the resolved rootfs as a read-only root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.cluster.images import (
    ImageFormatError,
    ImageInUseError,
    ImageNameError,
    ImageNotFoundError,
    ImageStore,
    parse_reference,
)
from reference_runtime.rootfs_builder import build_rootfs, export_tarball
from reference_runtime.spec import default_spec

pytestmark = pytest.mark.needs_root

Member = tuple[str, str, Any]  # (name, kind, data): kind file|dir|symlink|hardlink


# -- archive builders ---------------------------------------------------------------------


def layer_tar(members: list[Member]) -> bytes:
    """An uncompressed layer tar with exactly these members, in this order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
            else:
                payload = data.encode() if isinstance(data, str) else data
                info.size, info.mode = len(payload), 0o644
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layout(
    dest: Path, layers: list[tuple[bytes, bool]], *, tag: str = "1", skip_blob: int = -1
) -> Path:
    """Write an OCI image layout tar at ``dest``: ``layers`` are (uncompressed tar, gzip?)."""
    blobs: dict[str, bytes] = {}
    descriptors, diff_ids = [], []
    for tar_bytes, gz in layers:
        blob = gzip.compress(tar_bytes, mtime=0) if gz else tar_bytes
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
        descriptors.append({"mediaType": media, "digest": sha(blob), "size": len(blob)})
        blobs[sha(blob)] = blob
        diff_ids.append(sha(tar_bytes))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    ).encode()
    blobs[sha(config)] = config
    blobs[sha(manifest)] = manifest
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": json.dumps(index)}
    skipped = descriptors[skip_blob]["digest"] if skip_blob >= 0 else None
    for digest, blob in blobs.items():
        if digest != skipped:
            files[f"blobs/sha256/{digest.split(':')[1]}"] = blob
    dest.write_bytes(layer_tar([(name, "file", data) for name, data in files.items()]))
    return dest


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The test rootfs (busybox from the host) as an uncompressed tar."""
    path = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
    return export_tarball(build_rootfs(), path).read_bytes()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def leftovers(store: ImageStore) -> list[str]:
    """Everything in the store but its lock and empty content/refs directories."""
    found = []
    for entry in store.root.iterdir() if store.root.exists() else []:
        if entry.name in ("content", "refs"):
            found += [f"{entry.name}/{e}" for e in os.listdir(entry)]
        elif entry.name != ".lock":
            found.append(entry.name)
    return found


@pytest.fixture
def run_in(
    run_capture: Callable[[Path], tuple[int, str]], tmp_path: Path
) -> Callable[[Path, str], tuple[int, str]]:
    """Run ``sh -c SCRIPT`` in the reference runtime with ``rootfs`` as a read-only root."""

    def run(rootfs: Path, script: str) -> tuple[int, str]:
        bundle = tmp_path / f"bundle-{len(list(tmp_path.glob('bundle-*')))}"
        bundle.mkdir()
        spec = default_spec(["sh", "-c", script])
        spec["root"] = {"path": str(rootfs), "readonly": True}
        (bundle / "config.json").write_text(json.dumps(spec))
        return run_capture(bundle)

    return run


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:latest", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/app:v1.2", "docker.io/user/app:v1.2"),
        ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
        ("example.com/team/app:rc_1", "example.com/team/app:rc_1"),
    ],
)
def test_names_are_normalised_like_docker(text: str, name: str) -> None:
    assert parse_reference(text).name == name


@pytest.mark.parametrize("text", ["", "BusyBox", "a//b", "x:", "x:!bad", "/abs", "a@sha256:12"])
def test_bad_names_are_refused(text: str) -> None:
    with pytest.raises(ImageNameError) as info:
        parse_reference(text)
    assert "\n" not in str(info.value)


# -- formats ------------------------------------------------------------------------------


def test_default_image_is_there_and_runs(
    store: ImageStore, run_in: Callable[[Path, str], tuple[int, str]]
) -> None:
    names = [image.short_name for image in store.list()]
    assert names == ["busybox:latest"]
    rootfs = store.resolve("docker.io/library/busybox:latest")
    assert rootfs == store.resolve("busybox") == store.resolve("busybox:latest")
    assert run_in(rootfs, "echo ok") == (0, "ok\n")


def test_rootfs_tarball_gzip_imports_and_runs(
    store: ImageStore,
    rootfs_tar: bytes,
    tmp_path: Path,
    run_in: Callable[[Path, str], tuple[int, str]],
) -> None:
    archive = tmp_path / "rootfs.tar.gz"
    archive.write_bytes(gzip.compress(rootfs_tar))
    image = store.import_archive("my/app", archive)
    assert (image.name, image.format, image.id) == (
        "docker.io/my/app:latest",
        "rootfs",
        sha(archive.read_bytes()),
    )
    rootfs = store.resolve("my/app:latest")
    assert (rootfs / "bin" / "sh").exists() and os.stat(rootfs / "tmp").st_mode & 0o7777 == 0o1777
    assert run_in(rootfs, "echo ok") == (0, "ok\n")
    # Under a second name the content is shared, not unpacked again.
    assert store.import_archive("other:2", archive).rootfs == rootfs


def test_oci_layout_layers_whiteouts_and_opaque_dirs(
    store: ImageStore,
    rootfs_tar: bytes,
    tmp_path: Path,
    run_in: Callable[[Path, str], tuple[int, str]],
) -> None:
    middle = layer_tar(
        [
            ("data", "dir", None),
            ("data/old", "file", "lower"),
            ("data/sub", "dir", None),
            ("data/sub/deep", "file", "lower"),
            ("gone", "file", "bye"),
            ("kept", "file", "kept"),
            ("bin/extra", "hardlink", "bin/busybox"),
        ]
    )
    top = layer_tar(
        [
            ("data/new", "file", "upper"),
            ("data/.wh..wh..opq", "file", ""),  # after a sibling: still only hides lower ones
            ("data/sub", "dir", None),
            (".wh.gone", "file", ""),
            ("fresh", "file", "same layer"),
            (".wh.fresh", "file", ""),  # a whiteout never hides its own layer's entries
            ("link", "symlink", "/data/new"),
        ]
    )
    archive = oci_layout(tmp_path / "oci.tar", [(rootfs_tar, True), (middle, False), (top, True)])
    image = store.import_archive("example.com/layered:1", archive)
    assert image.format == "oci-layout" and image.config["Cmd"] == ["sh"]
    rootfs = image.rootfs
    assert sorted(os.listdir(rootfs / "data")) == ["new", "sub"]
    assert os.listdir(rootfs / "data" / "sub") == []
    assert not os.path.lexists(rootfs / "gone") and (rootfs / "kept").read_text() == "kept"
    assert (rootfs / "fresh").read_text() == "same layer"
    assert not any(".wh." in name for _, _, files in os.walk(rootfs) for name in files)
    assert os.stat(rootfs / "bin" / "extra").st_ino == os.stat(rootfs / "bin" / "busybox").st_ino
    code, out = run_in(rootfs, "echo ok; cat /link; ls /data")
    assert (code, out) == (0, "ok\nuppernew\nsub\n")


def test_docker_save_from_a_real_dockerd(
    store: ImageStore, rootfs_tar: bytes, tmp_path: Path
) -> None:
    if shutil.which("dockerd") is None or shutil.which("runc") is None:
        pytest.skip("needs dockerd and runc (apt-get install docker.io runc)")
    import docker

    from pytest_containers.adapters.dockerd import DockerDaemon
    from pytest_containers.errors import RuntimeUnavailableError

    base = Path(f"/tmp/pc-img-{os.getpid()}")  # short: the socket path must fit 108 bytes
    try:
        daemon = DockerDaemon.start(base)
    except RuntimeUnavailableError as exc:
        pytest.skip(f"cannot start dockerd: {exc}")
    try:
        client = docker.DockerClient(base_url=daemon.host, timeout=60)
        client.api.import_image_from_data(rootfs_tar, repository="pc-img/base", tag="1")
        layered = "pc-img/base:1"
        for step, script in enumerate(
            [
                "mkdir /var/lib && echo a > /var/lib/a && echo b > /var/b",
                "rm -rf /var && mkdir /var && echo c > /var/c && rm /bin/ls",
            ]
        ):
            box = client.containers.run(
                layered, ["sh", "-c", script], network_mode="none", detach=True
            )
            assert box.wait(timeout=60)["StatusCode"] == 0
            box.commit(repository="pc-img/layered", tag=str(step))
            box.remove()
            layered = f"pc-img/layered:{step}"
        archive = tmp_path / "saved.tar"
        with archive.open("wb") as f:
            for chunk in client.images.get(layered).save(named=True):
                f.write(chunk)
        docker_id = client.images.get(layered).id
        client.close()
    finally:
        daemon.stop()
    image = store.import_archive("pc-img/layered:1", archive)
    assert image.format == "docker-archive" and image.id == docker_id
    rootfs = image.rootfs
    assert os.listdir(rootfs / "var") == ["c"]  # the opaque directory hid a and lib/
    assert not os.path.lexists(rootfs / "bin" / "ls") and (rootfs / "bin" / "cat").exists()
    run_root = tmp_path / "runc"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = default_spec(["sh", "-c", "echo ok"])
    spec["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(spec))
    done = subprocess.run(
        ["runc", "--root", str(run_root), "run", "--bundle", str(bundle), f"pc-img-{os.getpid()}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


# -- bad input ----------------------------------------------------------------------------


def _rootfs_with(members: list[Member]) -> Callable[[Path, bytes], Path]:
    def make(dest: Path, rootfs_tar: bytes) -> Path:
        dest.write_bytes(layer_tar(members))
        return dest

    return make


def _truncated(dest: Path, rootfs_tar: bytes) -> Path:
    data = gzip.compress(rootfs_tar)
    dest.write_bytes(data[: len(data) // 2])
    return dest


def _missing_blob(dest: Path, rootfs_tar: bytes) -> Path:
    return oci_layout(dest, [(rootfs_tar, True)], skip_blob=0)


def _digest_mismatch(dest: Path, rootfs_tar: bytes) -> Path:
    oci_layout(dest, [(rootfs_tar, False)])
    with tarfile.open(dest) as outer:
        files = {m.name: outer.extractfile(m).read() for m in outer if m.isfile()}  # type: ignore[union-attr]
    layer = next(n for n, d in files.items() if d == rootfs_tar)
    files[layer] = rootfs_tar.replace(b"reference", b"tampered!", 1)  # same size, new bytes
    dest.write_bytes(layer_tar([(name, "file", data) for name, data in files.items()]))
    return dest


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_rootfs_with([("../evil", "file", "x")]), "escapes the root with '..'"),
        (_rootfs_with([("/evil", "file", "x")]), "is an absolute path"),
        (
            _rootfs_with([("out", "symlink", "/tmp"), ("out/pc-img-through", "file", "x")]),
            "goes through the symbolic link 'out'",
        ),
        (_rootfs_with([("up", "symlink", "../../..")]), "points outside the root"),
        (_rootfs_with([("pw", "hardlink", "../etc/passwd")]), "escapes the root"),
        (_truncated, "damaged"),
        (_missing_blob, "the archive has no file 'blobs/sha256/"),
        (_digest_mismatch, "digest mismatch"),
        (
            lambda dest, _: dest.write_bytes(b"not a tar at all\n" * 64) and dest,
            "not a tar archive",
        ),
    ],
    ids=[
        "dotdot",
        "absolute",
        "through-symlink",
        "symlink-out",
        "hardlink-out",
        "truncated",
        "missing-blob",
        "digest-mismatch",
        "not-a-tar",
    ],
)
def test_bad_archives_are_refused_and_leave_nothing(
    store: ImageStore,
    rootfs_tar: bytes,
    tmp_path: Path,
    make: Callable[[Path, bytes], Path],
    message: str,
) -> None:
    archive = make(tmp_path / "bad.tar", rootfs_tar)
    with pytest.raises(ImageFormatError) as info:
        store.import_archive("bad:1", archive)
    text = str(info.value)
    assert message in text and "\n" not in text
    assert leftovers(store) == []
    assert not os.path.lexists("/tmp/pc-img-through")
    with pytest.raises(ImageNotFoundError):
        store.get("bad:1")


def test_missing_image_says_how_to_import_it(store: ImageStore) -> None:
    with pytest.raises(ImageNotFoundError) as info:
        store.resolve("x:y")
    assert str(info.value) == (
        'image "x:y" not found in the node\'s image store;'
        " import it with: reference-cluster image import x:y TARBALL"
    )


def test_an_image_in_use_is_not_removed(store: ImageStore, tmp_path: Path) -> None:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    rootfs = store.resolve("busybox")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = default_spec(["sleep", "60"])
    spec["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(spec))
    runc = ["runc", "--root", str(tmp_path / "runc")]
    cid = f"pc-img-use-{os.getpid()}"
    subprocess.run([*runc, "create", "--bundle", str(bundle), cid], check=True, timeout=60)
    try:
        with pytest.raises(ImageInUseError, match="delete their pods first"):
            store.remove("busybox")
        assert store.resolve("busybox") == rootfs
    finally:
        subprocess.run([*runc, "delete", "--force", cid], check=True, timeout=60)
    store.remove("busybox")
    assert leftovers(store) == []


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    state = tmp_path / "state"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reference_runtime.cluster.cli", "--state-dir", str(state)]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=60, check=False
        )

    yield run
    for cluster in state.glob("*") if state.exists() else []:
        run("down", "--name", cluster.name)  # a failed test must not leave a daemon behind


def test_cli_import_list_rm(
    cli: Callable[..., subprocess.CompletedProcess[str]], rootfs_tar: bytes, tmp_path: Path
) -> None:
    archive = oci_layout(tmp_path / "app.tar", [(rootfs_tar, True)])
    down = cli("image", "list", "--name", "imgs")
    assert down.returncode == 1 and "cluster imgs is not up" in down.stderr
    assert len(down.stderr.splitlines()) == 1
    up = cli("up", "--name", "imgs", "--nodes", "0", "--insecure-http")
    assert up.returncode == 0, up.stderr
    imported = cli("image", "import", "--name", "imgs", "app:1", str(archive))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("imported app:1 (") and "oci-layout" in imported.stdout
    listed = cli("image", "list", "--name", "imgs").stdout.splitlines()
    assert listed[0].split() == ["NAME", "IMAGE", "ID", "SIZE", "FORMAT"]
    assert [line.split()[0] for line in listed[1:]] == ["app:1", "busybox:latest"]
    store = ImageStore.for_cluster(tmp_path / "state", "imgs")
    assert (store.resolve("docker.io/library/app:1") / "bin" / "sh").exists()
    for args, error in [
        (("import", "Bad", str(archive)), "invalid image reference 'Bad'"),
        (("import", "x:1", str(tmp_path / "none.tar")), "none.tar: no such file"),
        (("import", "x:1", "/etc/hostname"), "is not a tar archive"),
        (("rm", "nothere:1"), 'image "nothere:1" is not in the image store'),
    ]:
        bad = cli("image", *args, "--name", "imgs")
        assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and error in bad.stderr, bad
    removed = cli("image", "rm", "--name", "imgs", "app:1")
    assert (removed.returncode, removed.stdout) == (0, "removed app:1\n")
    listed = cli("image", "list", "--name", "imgs").stdout.splitlines()
    assert [line.split()[0] for line in listed[1:]] == ["busybox:latest"]
    assert cli("down", "--name", "imgs").returncode == 0
