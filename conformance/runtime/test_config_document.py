"""The configuration document (config.md): an ociVersion that is not SemVer or of
another major version is refused and every earlier release of the same major version is
accepted; unknown properties are ignored; annotation keys are free, but a value that is
not a string and an empty key are refused.

Each bad config is a literal edit of the default one (``_badconfig``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_containers.errors import RuntimeCommandError
from pytest_containers.requirements import not_applicable
from pytest_containers.runtime import ContainerFactory

from ._badconfig import (
    Change,
    FieldPath,
    docker_reads_config,
    refuses,
    run_output,
    try_bundle,
    write_bundle,
)
from ._examples import FEWER, FIRST_FAILURE
from ._support import expressible

SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
"""SemVer 2.0.0's own regular expression (semver.org), anchored by ``fullmatch``."""

NOT_SEMVER = ("1.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0-rc.01", " 1.0.0", "")

# The releases of the runtime-spec (git tags v1.0.0 ... v1.2.0).
RELEASES = ("1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.2.0")


@pytest.mark.requirement("RT-CONF-VERSION-1")
def test_an_ociversion_that_is_not_semver_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """Each of a fixed list of near misses (two parts, a "v", leading zeros, a numeric
    pre-release with a leading zero, spaces, empty) is refused."""
    docker_reads_config(container_factory.adapter)
    accepted = []
    for version in NOT_SEMVER:
        bundle = write_bundle(tmp_path, rootfs, [Change(("ociVersion",), version)])
        with expressible():
            if not try_bundle(container_factory, bundle, rootfs).refused_by:
                accepted.append(version)
        shutil.rmtree(bundle)
    assert not accepted, f"{container_factory.adapter.name} accepted ociVersion {accepted}"


@pytest.mark.requirement("RT-CONF-VERSION-1")
@FEWER
@given(
    version=st.text(alphabet="0123456789.-+rcv", min_size=1, max_size=10).filter(
        lambda v: not SEMVER.fullmatch(v)
    )
)
def test_a_generated_ociversion_that_is_not_semver_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, version: str
) -> None:
    docker_reads_config(container_factory.adapter)
    refuses(container_factory, rootfs, tmp_path, Change(("ociVersion",), version))


@pytest.mark.requirement("RT-CONF-VERSION-3")
@FEWER
@given(
    major=st.sampled_from([0, 2]) | st.integers(2, 99),
    minor=st.integers(0, 20),
    patch=st.integers(0, 20),
)
def test_an_ociversion_of_another_major_version_is_refused(
    container_factory: ContainerFactory,
    rootfs: Path,
    tmp_path: Path,
    major: int,
    minor: int,
    patch: int,
) -> None:
    docker_reads_config(container_factory.adapter)
    version = f"{major}.{minor}.{patch}"
    refuses(container_factory, rootfs, tmp_path, Change(("ociVersion",), version))


@pytest.mark.requirement("RT-CONF-VERSION-2")
def test_every_earlier_release_of_the_same_major_version_is_accepted(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    """The runtime says in ``state.ociVersion`` which version it complies with; every
    release of the spec up to that one, within major version 1, must be accepted."""
    adapter = container_factory.adapter
    docker_reads_config(adapter)
    probe = container_factory.make_container(tmp_path, ["true"], start=False)
    try:
        supported = str(probe.state().get("ociVersion", ""))
    finally:
        container_factory.remove(probe)
    if not SEMVER.fullmatch(supported) or not supported.startswith("1."):
        pytest.fail(f"{adapter.name} reports state.ociVersion {supported!r}, not a 1.x SemVer")
    earlier = [v for v in RELEASES if _semver_key(v) <= _semver_key(supported)]
    assert earlier, f"{adapter.name} reports ociVersion {supported}, older than any release"
    refused = {}
    for version in earlier:
        command = ["sh", "-c", "echo ran"]
        bundle = write_bundle(tmp_path, rootfs, [Change(("ociVersion",), version)], command)
        try:
            status, out = run_output(container_factory, bundle)
            if (status, out) != (0, "ran\n"):
                refused[version] = f"the program exited {status} with {out!r}"
        except RuntimeCommandError as exc:
            refused[version] = exc.runtime_message
        shutil.rmtree(bundle)
    assert not refused, (
        f"{adapter.name} complies with runtime-spec {supported} but refused configs of "
        f"earlier releases: {refused}"
    )


def _semver_key(version: str) -> tuple[int, int, int, int, str]:
    match = SEMVER.fullmatch(version)
    assert match is not None, version
    major, minor, patch, pre = match.group(1), match.group(2), match.group(3), match.group(4)
    # a pre-release sorts before its release: 1.0.2-dev < 1.0.2
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


# ---------------------------------------------------------------- unknown properties

_UNKNOWN_AT: tuple[FieldPath, ...] = (
    (),
    ("process",),
    ("process", "user"),
    ("root",),
    ("linux",),
    ("linux", "resources"),
    ("linux", "namespaces", 0),
    ("mounts", 0),
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)

unknown_properties = st.lists(
    st.builds(
        Change,
        path=st.tuples(
            st.sampled_from(_UNKNOWN_AT),
            st.from_regex(r"pcUnknown[A-Za-z0-9]{0,8}", fullmatch=True),
        ).map(lambda t: (*t[0], t[1])),
        value=_json_values,
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.requirement("RT-CONF-EXT-1")
@FIRST_FAILURE
@given(edits=unknown_properties)
def test_unknown_properties_are_ignored(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, edits: list[Change]
) -> None:
    docker_reads_config(container_factory.adapter)
    # a known property beside the unknown ones must still be applied
    env = Change(("process", "env"), ["PATH=/bin", "PC_KNOWN=applied"])
    bundle = write_bundle(tmp_path, rootfs, [*edits, env], ["sh", "-c", "echo $PC_KNOWN"])
    try:
        status, out = run_output(container_factory, bundle)
    except RuntimeCommandError as exc:
        pytest.fail(f"{container_factory.adapter.name} refused unknown properties: {exc}")
    assert (status, out) == (0, "applied\n"), "the program did not run as configured"
    shutil.rmtree(bundle)


# ---------------------------------------------------------------- annotations


@pytest.mark.requirement("RT-CONF-ANNOT-1")
@FEWER
@given(
    annotations=st.dictionaries(
        st.from_regex(r"(com|org|io)\.pc-[a-z0-9]{1,8}(\.[a-z0-9-]{1,8}){0,2}", fullmatch=True),
        st.text(max_size=16),
        min_size=1,
        max_size=4,
    )
)
def test_unknown_annotation_keys_are_accepted(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, annotations: dict[str, str]
) -> None:
    edit = Change(("annotations",), annotations)
    bundle = write_bundle(tmp_path, rootfs, [edit], ["sh", "-c", "echo ran"])
    with expressible():
        try:
            status, out = run_output(container_factory, bundle)
        except RuntimeCommandError as exc:
            pytest.fail(f"{container_factory.adapter.name} refused annotations: {exc}")
    assert (status, out) == (0, "ran\n")
    shutil.rmtree(bundle)


@pytest.mark.requirement("RT-CONF-ANNOT-2")
@FEWER
@given(
    value=st.none()
    | st.booleans()
    | st.integers()
    | st.lists(st.text(max_size=3), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)
)
def test_an_annotation_value_that_is_not_a_string_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path, value: Any
) -> None:
    annotations = {"org.pc.ok": "fine", "org.pc.bad": value}
    refuses(container_factory, rootfs, tmp_path, Change(("annotations",), annotations))


@pytest.mark.requirement("RT-CONF-ANNOT-2")
def test_an_empty_annotation_key_is_refused(
    container_factory: ContainerFactory, rootfs: Path, tmp_path: Path
) -> None:
    if container_factory.adapter.name == "docker":
        not_applicable(
            "docker: annotations become labels named 'oci.annotation.' + key, so an empty "
            "annotation key never reaches the Engine as an empty label key"
        )
    refuses(container_factory, rootfs, tmp_path, Change(("annotations",), {"": "x"}))
