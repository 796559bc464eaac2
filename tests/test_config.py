"""Fast unit tests: config parsing, IDs, the status table, the CLI parser, JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_runtime import _lite, cli
from reference_runtime.config import ConsoleSize, parse_config, validate_id
from reference_runtime.errors import ConfigError, InvalidIDError, RootfsError
from reference_runtime.rootfs import parse_options, resolve_in_root
from reference_runtime.spec import default_spec
from reference_runtime.state import State, Status


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def test_default_spec_parses(bundle_dir):
    config = parse_config(default_spec(["sh"]), str(bundle_dir))
    assert config.process.args == ("sh",)
    assert config.new_namespace("pid") and not config.new_namespace("user")
    assert config.root_readonly and config.hostname == "reference"


def test_rootless_spec_parses(bundle_dir):
    config = parse_config(default_spec(rootless=True), str(bundle_dir))
    assert config.new_namespace("user") and config.uid_mappings[0].size == 1


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("1.0.0", True),
        ("1.1.0", True),
        ("1.0.2-dev", True),
        ("1.00.0", False),
        ("1.1.01", False),
        ("1.2.1", True),
        ("2.0.0", False),
        ("1.0", False),
        ("x", False),
    ],
)
def test_oci_version(bundle_dir, version, ok):
    config = default_spec()
    config["ociVersion"] = version
    if ok:
        parse_config(config, str(bundle_dir))
    else:
        with pytest.raises(ConfigError, match="ociVersion"):
            parse_config(config, str(bundle_dir))


def _edit(path: str, value: Any) -> dict[str, Any]:
    config = default_spec()
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("process.args", "sh", "process.args must be a non-empty list"),
        ("process.user.uid", -1, "out of range"),
        ("process.user.uid", "0", "must be an integer"),
        ("process.oomScoreAdj", 5000, "out of range"),
        (
            "process.rlimits",
            [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}],
            "soft 10 exceeds hard 5",
        ),
        ("hostname", "x" * 65, "longer than 64 bytes"),
        ("linux.namespaces", [{"type": "pid"}], "must include a mount namespace"),
        ("linux.namespaces", [{"type": "mount"}, {"type": "mount"}], "twice"),
        (
            "linux.namespaces",
            [{"type": "mount"}, {"type": "net", "path": "/nonexistent"}],
            "not one of",
        ),
        ("linux.cgroupsPath", "/a/../b", "must not contain '..'"),
        ("linux.rootfsPropagation", "sideways", "is not one of"),
        ("linux.sysctl", {"net.ipv4.ip_forward": 1}, "must be a string"),
        ("linux.sysctl", {"vm.swappiness": "1"}, "not namespaced"),
        (
            "linux.devices",
            [{"path": "/etc/x", "type": "c", "major": 1, "minor": 3}],
            "must be under /dev",
        ),
        ("linux.maskedPaths", ["proc/kcore"], "must be an absolute path"),
        (
            "linux.namespaces",
            [{"type": "mount"}, {"type": "network", "path": "run/netns/x"}],
            "absolute path",
        ),
        ("mounts", [{"destination": "/x", "type": "bind"}], "without a source"),
        ("hooks", {"prestart": [{"path": "relative"}]}, "must be absolute"),
        ("annotations", {"a": 1}, "must be a string"),
    ],
)
def test_invalid_values_are_one_line_config_errors(bundle_dir, path, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(_edit(path, value), str(bundle_dir))
    assert "\n" not in str(info.value)


def test_hostname_without_uts_namespace(bundle_dir):
    config = default_spec()
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "uts"
    ]
    with pytest.raises(ConfigError, match="new uts namespace"):
        parse_config(config, str(bundle_dir))


def test_a_relative_mount_destination_is_relative_to_root(bundle_dir):
    config = parse_config(
        _edit("mounts", [{"destination": "mnt/x", "type": "tmpfs"}]), str(bundle_dir)
    )
    assert config.mounts[0].destination == "/mnt/x"


def test_seccomp_is_parsed(bundle_dir):
    seccomp = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "meta",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["kill"],
                "action": "SCMP_ACT_NOTIFY",
                "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }
    parsed = parse_config(_edit("linux.seccomp", seccomp), str(bundle_dir)).seccomp
    assert parsed is not None and parsed.notifies
    assert (parsed.default_action, parsed.default_errno_ret) == ("SCMP_ACT_ERRNO", 38)
    assert parsed.architectures == ("X86_64", "X86") and parsed.listener_metadata == "meta"
    assert parsed.syscalls[1].args[0].op == "EQ" and parsed.syscalls[1].args[0].value == 9
    assert parse_config(default_spec(), str(bundle_dir)).seccomp is None


@pytest.mark.parametrize(
    ("seccomp", "message"),
    [
        ({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": -1}, "out of range"),
        ({"defaultAction": "SCMP_ACT_LOG", "defaultErrnoRet": 1}, "SCMP_ACT_LOG returns no"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_LOG"}]}, "names"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["X86_64"]}, "unknown arch"),
        ({"syscalls": []}, "defaultAction must be a non-empty string"),
        ("allow", "linux.seccomp must be an object"),
    ],
)
def test_invalid_seccomp(bundle_dir, seccomp, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_edit("linux.seccomp", seccomp), str(bundle_dir))


def test_terminal_and_console_size_are_parsed(bundle_dir):
    config = _edit("process.terminal", True)
    config["process"]["consoleSize"] = {"height": 24, "width": 80}
    process = parse_config(config, str(bundle_dir)).process
    assert process.terminal and process.console_size == ConsoleSize(height=24, width=80)


def test_console_size_is_ignored_without_a_terminal(bundle_dir):
    config = _edit("process.consoleSize", {"height": 24, "width": 80})
    assert parse_config(config, str(bundle_dir)).process.console_size is None


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ({"height": -1, "width": 80}, "consoleSize.height = -1 is out of range"),
        ({"height": 24}, "consoleSize.width must be an integer"),
        ({"height": 24, "width": 70000}, "consoleSize.width = 70000 is out of range"),
        ([24, 80], "consoleSize must be an object"),
    ],
)
def test_invalid_console_size(bundle_dir, size, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_edit("process.consoleSize", size), str(bundle_dir))


@pytest.mark.parametrize("good", ["a", "A-b_c.d+e", "x" * 255, "0"])
def test_valid_ids(good):
    validate_id(good)


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "x" * 256, "sp ace", "tab\t", "ü"])
def test_invalid_ids(bad):
    with pytest.raises(InvalidIDError):
        validate_id(bad)


@given(st.text(max_size=300))
def test_id_validation_never_lets_a_path_through(text):
    try:
        validate_id(text)
    except InvalidIDError:
        return
    assert "/" not in text and text not in (".", "..") and 0 < len(text) <= 255


# status x verb, as runtime.md says
@pytest.mark.parametrize(
    ("status", "start", "kill", "delete", "exec_"),
    [
        (Status.CREATING, False, False, False, False),
        (Status.CREATED, True, True, False, True),
        (Status.RUNNING, False, True, False, True),
        (Status.STOPPED, False, False, True, False),
    ],
)
def test_status_table(status, start, kill, delete, exec_):
    assert status.can_start() is start
    assert status.can_kill() is kill
    assert status.can_delete() is delete
    assert status.can_delete(force=True) is True
    assert status.can_exec() is exec_


def test_status_is_a_closed_set_of_strings():
    assert Status("running") is Status.RUNNING
    assert json.dumps(Status.RUNNING) == '"running"'
    with pytest.raises(ValueError, match="not a valid Status"):
        Status("paused")


def test_state_round_trips_through_json():
    state = State(id="c", bundle="/b", status=Status.RUNNING, pid=7, annotations={"k": "v"})
    again = State.from_dict(json.loads(state.to_json()))
    assert again == state and again.status is Status.RUNNING
    spec = again.spec_state()
    assert spec["pid"] == 7 and spec["status"] == "running" and spec["annotations"] == {"k": "v"}
    stopped = State(id="c", bundle="/b", status=Status.STOPPED, pid=7)
    assert "pid" not in stopped.spec_state()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_lite_json_matches_the_json_module(value):
    assert _lite.dumps(value) == json.dumps(value)
    assert _lite.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert _lite.loads(_lite.dumps(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{}x", '{"a" 1}'])
def test_lite_json_rejects_what_json_rejects(bad):
    with pytest.raises(ValueError):
        _lite.loads(bad)


def test_mount_options():
    opts = parse_options(("nosuid", "noexec", "mode=755", "size=64k", "rprivate", "ro", "rw"))
    assert opts.data == "mode=755,size=64k"
    assert len(opts.propagation) == 1
    assert opts.flags & 1 == 0  # rw after ro clears MS_RDONLY


def test_resolve_in_root(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/real", root / "abs")
    os.symlink("real", root / "rel")
    os.symlink("../../..", root / "out")
    assert resolve_in_root(str(root), "/abs/x") == str(root / "real" / "x")
    assert resolve_in_root(str(root), "/rel/../real/y") == str(root / "real" / "y")
    with pytest.raises(RootfsError, match="escapes the root filesystem through symlink /out"):
        resolve_in_root(str(root), "/out/etc")
    with pytest.raises(RootfsError, match=r"escapes the root filesystem through '\.\.'"):
        resolve_in_root(str(root), "/../etc")


def test_cli_parser():
    args = cli.parse(
        ["--root", "/r", "--log-format=json", "create", "-b", "/b", "--pid-file", "p", "c1"]
    )
    assert (args["root"], args["log_format"], args["command"], args["bundle"], args["id"]) == (
        "/r",
        "json",
        "create",
        "/b",
        "c1",
    )
    args = cli.parse(["exec", "-e", "A=1", "--env=B=2", "c1", "sh", "-c", "echo -n hi"])
    assert args["env"] == ["A=1", "B=2"] and args["cmd"] == ["sh", "-c", "echo -n hi"]
    assert cli.parse(["kill", "c1"]).get("signal") is None
    assert cli.parse(["kill", "c1", "KILL"])["signal"] == "KILL"
    for bad, message in (
        ([], "a command is required"),
        (["nope"], "invalid choice"),
        (["start"], "required"),
        (["create", "--nope", "c"], "unknown option --nope"),
        (["--root"], "needs a value"),
        (["state", "a", "b"], "unexpected arguments"),
        (["exec", "c1"], "a command to run is required"),
    ):
        with pytest.raises(cli.UsageError, match=message):
            cli.parse(bad)


def test_an_unknown_capability_is_a_warning_not_an_error(bundle_dir):
    # config.md: not grantable -> "MUST be logged as a warning", runtimes "SHOULD NOT fail"
    config = parse_config(
        _edit("process.capabilities.bounding", ["CAP_KILL", "CAP_FLY"]), str(bundle_dir)
    )
    assert config.process.capabilities is not None
    assert config.process.capabilities.bounding == 1 << 5
    assert any("'CAP_FLY'" in w and "skipped" in w for w in config.warnings)
