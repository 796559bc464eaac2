"""The runtime requirement catalogue (conformance/requirements/runtime.toml): shape and coverage.

Fast unit tests, no kernel involved. Each test gathers every offending entry so one
run shows all that is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from pytest_containers.requirements import LEVELS, Catalogue, Requirement

REPO = Path(__file__).parent.parent
CATALOGUE_DIR = REPO / "conformance" / "requirements"
RUNTIME_TOML = CATALOGUE_DIR / "runtime.toml"

ID_RE = re.compile(r"^RT-[A-Z0-9]+(-[A-Z0-9]+)*-\d+$")
OWN_PREFIX = "RT-OWN-"
PROJECT_GUARANTEE = "project guarantee"
AREAS = frozenset(
    {
        "lifecycle",
        "state",
        "operations",
        "hooks",
        "filesystem",
        "process",
        "isolation",
        "devices",
        "limits",
        "config",
    }
)
KEYS = frozenset({"id", "level", "area", "source", "text", "untested"})
REQUIRED_KEYS = KEYS - {"untested"}
MAX_TEXT = 300

# Section anchors of the runtime-spec files, as GitHub renders the headings.
SECTIONS: dict[str, frozenset[str]] = {
    "runtime.md": frozenset(
        {
            "scope-of-a-container",
            "state",
            "lifecycle",
            "errors",
            "warnings",
            "operations",
            "query-state",
            "create",
            "start",
            "kill",
            "delete",
            "hooks",
        }
    ),
    "runtime-linux.md": frozenset({"file-descriptors", "dev-symbolic-links"}),
    "config.md": frozenset(
        {
            "specification-version",
            "root",
            "mounts",
            "linux-mount-options",
            "posix-platform-mounts",
            "process",
            "posix-process",
            "linux-process",
            "user",
            "posix-platform-user",
            "hostname",
            "domainname",
            "platform-specific-configuration",
            "posix-platform-hooks",
            "prestart",
            "createruntime-hooks",
            "createcontainer-hooks",
            "startcontainer-hooks",
            "poststart",
            "poststop",
            "annotations",
            "extensibility",
            "valid-values",
        }
    ),
    "config-linux.md": frozenset(
        {
            "default-filesystems",
            "namespaces",
            "user-namespace-mappings",
            "offset-for-time-namespace",
            "devices",
            "default-devices",
            "control-groups",
            "cgroups-path",
            "cgroup-ownership",
            "allowed-device-list",
            "memory",
            "cpu",
            "block-io",
            "huge-page-limits",
            "network",
            "pids",
            "rdma",
            "unified",
            "intelrdt",
            "sysctl",
            "seccomp",
            "the-container-process-state",
            "rootfs-mount-propagation",
            "masked-paths",
            "readonly-paths",
            "mount-label",
            "personality",
        }
    ),
}
SOURCE_RE = re.compile(r"^runtime-spec (?P<file>[a-z-]+\.md)#(?P<anchor>[a-z0-9-]+)$")

# Sections the suite is built around: each must have at least one requirement.
COVERED_SECTIONS = [
    "runtime.md#scope-of-a-container",
    "runtime.md#state",
    "runtime.md#lifecycle",
    "runtime.md#errors",
    "runtime.md#warnings",
    "runtime.md#operations",
    "runtime.md#query-state",
    "runtime.md#create",
    "runtime.md#start",
    "runtime.md#kill",
    "runtime.md#delete",
    "runtime-linux.md#file-descriptors",
    "runtime-linux.md#dev-symbolic-links",
    "config.md#specification-version",
    "config.md#root",
    "config.md#mounts",
    "config.md#linux-mount-options",
    "config.md#process",
    "config.md#posix-process",
    "config.md#linux-process",
    "config.md#posix-platform-user",
    "config.md#hostname",
    "config.md#domainname",
    "config.md#posix-platform-hooks",
    "config.md#prestart",
    "config.md#createruntime-hooks",
    "config.md#createcontainer-hooks",
    "config.md#startcontainer-hooks",
    "config.md#poststart",
    "config.md#poststop",
    "config.md#annotations",
    "config.md#extensibility",
    "config.md#valid-values",
    "config-linux.md#default-filesystems",
    "config-linux.md#namespaces",
    "config-linux.md#user-namespace-mappings",
    "config-linux.md#offset-for-time-namespace",
    "config-linux.md#devices",
    "config-linux.md#default-devices",
    "config-linux.md#cgroups-path",
    "config-linux.md#allowed-device-list",
    "config-linux.md#memory",
    "config-linux.md#cpu",
    "config-linux.md#pids",
    "config-linux.md#unified",
    "config-linux.md#intelrdt",
    "config-linux.md#sysctl",
    "config-linux.md#rootfs-mount-propagation",
    "config-linux.md#masked-paths",
    "config-linux.md#readonly-paths",
    "config-linux.md#personality",
]

# IDs that documentation and the brief name as examples: they must stay.
DOCUMENTED_IDS = [
    "RT-LIFE-CREATE-1",
    "RT-STATE-PID-1",
    "RT-OP-KILL-2",
    "RT-HOOK-PRESTART-1",
    "RT-NS-PID-1",
    "RT-NS-PATH-1",
    "RT-MNT-ORDER-1",
    "RT-PROC-CAPS-2",
    "RT-CG-MEM-1",
    "RT-FS-MASKED-1",
    "RT-DEV-DEFAULT-1",
    "RT-OWN-NET-LOOPBACK-1",
]

MIN_ENTRIES = 120
MIN_MUST_OR_SHOULD = 100


def _raw_entries() -> list[dict[str, object]]:
    data = tomllib.loads(RUNTIME_TOML.read_text())
    entries = data.get("requirement", [])
    assert isinstance(entries, list)
    return entries


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(CATALOGUE_DIR)


@pytest.fixture(scope="module")
def runtime_ids() -> list[str]:
    return [str(entry.get("id")) for entry in _raw_entries()]


@pytest.fixture(scope="module")
def runtime(catalogue: Catalogue, runtime_ids: list[str]) -> list[Requirement]:
    """The requirements of runtime.toml, as the plugin's loader parsed them."""
    return [catalogue[rid] for rid in runtime_ids]


def test_the_catalogue_loads_and_holds_every_runtime_entry(
    catalogue: Catalogue, runtime_ids: list[str]
) -> None:
    assert RUNTIME_TOML.is_file()
    missing = [rid for rid in runtime_ids if rid not in catalogue]
    assert not missing


def test_entries_have_exactly_the_known_keys() -> None:
    problems = []
    for i, entry in enumerate(_raw_entries(), start=1):
        keys = set(entry)
        if unknown := keys - KEYS:
            problems.append(f"#{i} {entry.get('id')}: unknown keys {sorted(unknown)}")
        if missing := REQUIRED_KEYS - keys:
            problems.append(f"#{i} {entry.get('id')}: missing keys {sorted(missing)}")
        if not all(isinstance(value, str) for value in entry.values()):
            problems.append(f"#{i} {entry.get('id')}: every value must be a string")
    assert not problems


def test_ids_are_unique(runtime_ids: list[str]) -> None:
    duplicates = [rid for rid, n in Counter(runtime_ids).items() if n > 1]
    assert not duplicates


def test_ids_are_well_formed(runtime_ids: list[str]) -> None:
    bad = [rid for rid in runtime_ids if not ID_RE.match(rid)]
    assert not bad


def test_levels_are_rfc2119_keywords(runtime: list[Requirement]) -> None:
    bad = [(r.id, r.level) for r in runtime if r.level not in LEVELS]
    assert not bad


def test_areas_come_from_the_fixed_set(runtime: list[Requirement]) -> None:
    bad = [(r.id, r.area) for r in runtime if r.area not in AREAS]
    assert not bad


def test_every_area_has_requirements(runtime: list[Requirement]) -> None:
    used = {r.area for r in runtime}
    assert used == AREAS


def test_sources_name_a_spec_section_or_the_project(runtime: list[Requirement]) -> None:
    bad = []
    for r in runtime:
        if r.source == PROJECT_GUARANTEE:
            continue
        match = SOURCE_RE.match(r.source)
        if match is None or match["anchor"] not in SECTIONS.get(match["file"], ()):
            bad.append((r.id, r.source))
    assert not bad


def test_project_guarantees_and_only_they_use_the_own_prefix(
    runtime: list[Requirement],
) -> None:
    bad = [
        (r.id, r.source)
        for r in runtime
        if r.id.startswith(OWN_PREFIX) != (r.source == PROJECT_GUARANTEE)
    ]
    assert not bad


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("The runtime supports pid namespaces.", True),
        ("A service on 127.0.0.1 is unreachable from the container.", True),
        ("no capital first.", False),
        ("No final period", False),
        ("Two sentences. Here is the second.", False),
        ("The runtime MUST do it.", False),
        ("Uses `markdown` quoting.", False),
        ("A" * MAX_TEXT + ".", False),
    ],
)
def test_text_rule(text: str, ok: bool) -> None:
    assert (_text_problem(text) is None) is ok


def test_texts_are_one_plain_sentence(runtime: list[Requirement]) -> None:
    bad = [(r.id, problem) for r in runtime if (problem := _text_problem(r.text))]
    assert not bad


def test_texts_are_not_repeated(runtime: list[Requirement]) -> None:
    repeated = [text for text, n in Counter(r.text for r in runtime).items() if n > 1]
    assert not repeated


def test_untested_entries_say_why(runtime: list[Requirement]) -> None:
    bad = [
        r.id
        for r in runtime
        if r.untested is not None and (not r.untested.strip() or len(r.untested) > MAX_TEXT)
    ]
    assert not bad


def test_coverage_floor(runtime: list[Requirement]) -> None:
    levels = Counter(r.level for r in runtime)
    assert len(runtime) >= MIN_ENTRIES
    assert levels["MUST"] + levels["SHOULD"] >= MIN_MUST_OR_SHOULD
    tested_spec = [r for r in runtime if r.untested is None and r.source != PROJECT_GUARANTEE]
    assert len(tested_spec) >= MIN_MUST_OR_SHOULD


def test_the_core_spec_sections_are_covered(runtime: list[Requirement]) -> None:
    sources = {r.source.removeprefix("runtime-spec ") for r in runtime}
    uncovered = [section for section in COVERED_SECTIONS if section not in sources]
    assert not uncovered


def test_documented_ids_exist(catalogue: Catalogue) -> None:
    missing = [rid for rid in DOCUMENTED_IDS if rid not in catalogue]
    assert not missing


def _text_problem(text: str) -> str | None:
    """Why ``text`` is not one plain sentence of a requirement, or None."""
    if len(text) > MAX_TEXT:
        return f"longer than {MAX_TEXT} characters"
    if text != text.strip() or "\n" in text:
        return "stray whitespace"
    if not text[:1].isupper():
        return "does not start with a capital letter"
    if not text.endswith("."):
        return "does not end with a period"
    if re.search(r"[.!?]\s+\S", text[:-1]):
        return "more than one sentence"
    if re.search(r"\b(MUST|SHOULD|MAY|REQUIRED|RECOMMENDED|OPTIONAL)\b", text):
        return "RFC 2119 keyword in the text (the level says it)"
    if "`" in text or "](" in text:
        return "markdown in the text"
    return None
