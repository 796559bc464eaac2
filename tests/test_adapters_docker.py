"""The Docker adapter against a real Docker Engine.

The engine at ``DOCKER_HOST`` is used when one answers; otherwise these tests start
their own ``dockerd --bridge=none --iptables=false`` under a temporary directory (its
own data root, exec root, pidfile and socket), record it in the ledger, and stop it by
PID at the end. They are skipped, with the reason, when no engine can be had.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_containers.adapters import (
    CREATED_PROCESS,
    HOOKS,
    JOIN_NAMESPACE_PATH,
    TERMINAL,
    ExecResult,
    RuntimeAdapter,
    Terminal,
    TerminalAdapter,
    WarningsAdapter,
    bundle_config,
    require,
    terminal_of,
    warnings_of,
)
from pytest_containers.adapters.docker import (
    IMAGE_REPOSITORY,
    LABEL_SESSION,
    DockerAdapter,
)
from pytest_containers.adapters.docker_attach import attachable
from pytest_containers.adapters.docker_fields import check_expressible, inexpressible
from pytest_containers.adapters.dockerd import DockerDaemon
from pytest_containers.adapters.engine import engine_options
from pytest_containers.errors import (
    ContainerNotFoundError,
    NotApplicableError,
    RuntimeCommandError,
    RuntimeUnavailableError,
)
from pytest_containers.ledger import process_start_time
from pytest_containers.plugin import ledger
from reference_runtime.rootfs_builder import make_bundle

pytest_plugins = ["pytester"]

MiB = 1 << 20


@pytest.fixture(scope="session")
def docker_host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The ``DOCKER_HOST`` of an engine that answers: the user's, or one of our own."""
    if os.environ.get("DOCKER_HOST"):
        try:
            DockerAdapter(os.environ["DOCKER_HOST"]).close()
            yield os.environ["DOCKER_HOST"]
            return
        except RuntimeUnavailableError:  # not answering: start our own below
            pass
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip(
            "no Docker Engine answers, and dockerd cannot be started here (needs root "
            "and apt-get install docker.io)"
        )
    led = ledger(request.config)
    try:
        daemon = DockerDaemon.start(tmp_path_factory.mktemp("dockerd"))
    except RuntimeUnavailableError as exc:
        pytest.skip(f"cannot start dockerd: {exc}")
    record = led.record(
        "process", f"dockerd-{daemon.pid}", pid=daemon.pid, start=process_start_time(daemon.pid)
    )
    try:
        yield daemon.host
    finally:
        daemon.stop()
        led.release(record)


@pytest.fixture
def adapter(docker_host: str, request: pytest.FixtureRequest) -> Iterator[DockerAdapter]:
    tag = ledger(request.config).tag
    adapter = DockerAdapter(docker_host, session=tag)
    yield adapter
    leftovers = adapter.client.containers.list(
        all=True, filters={"label": f"{LABEL_SESSION}={tag}"}
    )
    for found in leftovers:
        found.remove(force=True)
    adapter.close()
    assert not leftovers, f"test left containers behind: {[c.name for c in leftovers]}"


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Path]:
    """``make(command, **bundle_config_args)`` -> a bundle directory."""
    count = iter(range(1000))

    def build(command: list[str], **args: Any) -> Path:
        return make_bundle(tmp_path / f"b{next(count)}", config=bundle_config(command, **args))

    return build


@pytest.fixture
def cid(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Container names unique to this process, with the xdist worker id."""
    return lambda: ledger(request.config).unique_name("pc")


def test_engine_and_image(adapter: DockerAdapter, make: Callable[..., Path]) -> None:
    assert isinstance(adapter, RuntimeAdapter)
    assert adapter.version().startswith("Docker Engine ")
    rootfs = make(["true"]) / "rootfs"
    tag = adapter.image_for(rootfs)
    assert tag.startswith(f"{IMAGE_REPOSITORY}:")
    assert adapter.image_for(make(["true"]) / "rootfs") == tag  # same content, same image


def test_lifecycle(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    name = cid()
    bundle = make(["sleep", "30"])
    adapter.create(name, bundle)
    state = adapter.state(name)
    assert (state["status"], state["id"], state["bundle"]) == ("created", name, str(bundle))
    # the engine's "created" has no process yet, unlike runtime-spec's
    assert "pid" not in state
    with pytest.raises(NotApplicableError, match=CREATED_PROCESS):
        adapter.host_pid(name)
    with pytest.raises(NotApplicableError):
        require(adapter, CREATED_PROCESS)
    adapter.start(name)
    assert adapter.state(name)["status"] == "running"
    pid = adapter.host_pid(name)
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    with pytest.raises(RuntimeCommandError, match="force"):
        adapter.delete(name)  # running: the engine refuses without force
    adapter.kill(name, "KILL")
    assert adapter.wait(name, timeout=10) == 128 + signal.SIGKILL
    assert adapter.state(name)["status"] == "stopped"
    adapter.delete(name)
    with pytest.raises(ContainerNotFoundError, match=name):
        adapter.state(name)
    with pytest.raises(ContainerNotFoundError):
        adapter.delete(name, force=True)


def test_exec_returns_status_and_output(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    name = cid()
    adapter.create(name, make(["sleep", "30"], env={"FROM_CONFIG": "1"}))
    adapter.start(name)
    try:
        result = adapter.exec(
            name,
            ["sh", "-c", "echo out $FROM_CONFIG $EXTRA; pwd; echo err >&2; exit 3"],
            env=["EXTRA=2"],
            cwd="/tmp",
        )
        assert result == ExecResult(3, "out 1 2\n/tmp\n", "err\n")
        assert adapter.exec(name, ["touch", "/x"]).exit_code != 0  # read-only root
    finally:
        adapter.delete(name, force=True)


def test_exit_status(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    assert adapter.run(cid(), make(["sh", "-c", "exit 7"])) == 7
    name = cid()
    adapter.create(name, make(["sh", "-c", "exit 5"]))
    adapter.start(name)
    assert adapter.wait(name, timeout=10) == 5
    adapter.delete(name)


def test_hostname_env_and_output(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str], tmp_path: Path
) -> None:
    bundle = make(
        ["sh", "-c", "hostname; echo $GREETING; echo oops >&2"],
        hostname="web-1",
        env={"GREETING": "hi"},
    )
    with open(tmp_path / "out", "w+b") as out, open(tmp_path / "err", "w+b") as err:
        assert adapter.run(cid(), bundle, stdio=(0, out.fileno(), err.fileno())) == 0
    assert (tmp_path / "out").read_text() == "web-1\nhi\n"
    assert (tmp_path / "err").read_text() == "oops\n"


def test_memory_limit_applied(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    name = cid()
    adapter.create(name, make(["sleep", "30"], memory="48m", pids=64, cpu=0.5))
    adapter.start(name)
    try:
        seen = adapter.exec(name, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
        assert seen.stdout.strip() == str(48 * MiB)
        dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
        assert adapter.exec(name, dd).exit_code == 128 + signal.SIGKILL
        host = adapter.client.containers.get(name).attrs["HostConfig"]
        assert (host["PidsLimit"], host["CpuQuota"], host["CpuPeriod"]) == (64, 50_000, 100_000)
        assert (host["NetworkMode"], host["ReadonlyRootfs"]) == ("none", True)
    finally:
        adapter.delete(name, force=True)


def test_what_the_engine_cannot_express(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    hooks = make_bundle(
        make(["true"]).parent / "hooks",
        config=bundle_config(["true"]) | {"hooks": {"prestart": [{"path": "/bin/true"}]}},
    )
    with pytest.raises(NotApplicableError, match=HOOKS):
        adapter.create(cid(), hooks)
    joined = make(["true"], namespaces={"pid": None, "mount": None, "network": "/proc/1/ns/net"})
    with pytest.raises(NotApplicableError, match=JOIN_NAMESPACE_PATH):
        adapter.create(cid(), joined)
    umask = make(["true"])
    config = json.loads((umask / "config.json").read_text())
    config["process"]["user"]["umask"] = 0o77
    (umask / "config.json").write_text(json.dumps(config))
    name = cid()
    with pytest.raises(NotApplicableError, match=r"process\.user\.umask"):
        adapter.create(name, umask)
    with pytest.raises(ContainerNotFoundError):  # refused before the Engine made anything
        adapter.state(name)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


def _on_terminal(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def both(config: dict[str, Any]) -> None:
        config["process"]["terminal"] = True
        edit(config)

    return both


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_set("process.user.umask", 0o22), "process.user.umask"),
        (_set("process.terminal", True), None),
        (_set("process.consoleSize", {"height": 30, "width": 90}), None),  # no terminal
        (_on_terminal(_set("process.consoleSize", {"height": 30, "width": 90})),
         "process.consoleSize"),
        (_set("process.scheduler", {"policy": "SCHED_BATCH"}), "process.scheduler"),
        (_set("process.ioPriority", {"class": "IOPRIO_CLASS_IDLE"}), "process.ioPriority"),
        (_set("domainname", "example.org"), "domainname"),
        (_set("linux.personality", {"domain": "LINUX32"}), "linux.personality"),
        (_set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW"}), "linux.seccomp"),
        (_set("linux.devices", [{"path": "/dev/fuse", "type": "c"}]), "linux.devices"),
        (_set("linux.cgroupsPath", "/pc-demo"), "linux.cgroupsPath"),
        (_set("linux.resources.memory.swappiness", 0), "linux.resources.memory.swappiness"),
        (_set("linux.resources.memory.disableOOMKiller", True), None),
        (_set("linux.resources.cpu.realtimeRuntime", 1000), "linux.resources.cpu.realtimeRuntime"),
        (_set("linux.resources.pids", {"limit": 5}), None),
        (
            _set("linux.resources.blockIO", {"weight": 500}),
            "linux.resources.blockIO",
        ),
        (_set("linux.resources.unified", {"pids.max": "5"}), "linux.resources.unified"),
        (
            _set("linux.resources.devices", [{"allow": True, "access": "rwm"}]),
            "linux.resources.devices",
        ),
        (_set("linux.maskedPaths", ["/proc/kcore", "/etc/shadow"]), "linux.maskedPaths"),
        (_set("linux.maskedPaths", ["/proc/kcore"]), None),
        (_set("linux.readonlyPaths", ["/etc"]), "linux.readonlyPaths"),
        (_set("process.capabilities.effective", ["CAP_KILL"]), "process.capabilities.effective"),
        (
            _set("process.capabilities.inheritable", ["CAP_KILL"]),
            "process.capabilities.inheritable",
        ),
        (
            _set("mounts", [{"destination": "/d", "type": "bind", "source": "/srv",
                             "options": ["rbind", "nosuid"]}]),
            "mounts[0].options",
        ),
        (
            _set("mounts", [{"destination": "/d", "type": "bind", "source": "/srv",
                             "options": ["rbind", "ro"]}]),
            None,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)  # fmt: skip
def test_fields_without_an_engine_option_are_not_applicable(
    edit: Callable[[dict[str, Any]], None], field: str | None
) -> None:
    """Not dropped: the config is refused as not applicable, naming the field."""
    config = bundle_config(["sh"], memory="64m", pids=10, mounts=[("/srv", "/data", "ro")])
    check_expressible(config)  # the suite's ordinary configs are expressible
    assert inexpressible(config) is None
    edit(config)
    if field is None:
        assert inexpressible(config) is None
        return
    with pytest.raises(NotApplicableError) as caught:
        check_expressible(config)
    assert caught.value.feature == field and field in caught.value.reason


def test_engine_options_map_the_config() -> None:
    config = bundle_config(
        ["sh"], env={"A": "1"}, hostname="h", cwd="/tmp", user=(1000, 1000), memory="64m",
        pids=10, namespaces=["pid", "mount", "uts"], mounts=[("/srv", "/data", "ro")],
        annotations={"team": "x"},
    )  # fmt: skip
    options = engine_options(config)
    assert options["command"] == ["sh"] and options["user"] == "1000:1000"
    assert options["hostname"] == "h" and options["working_dir"] == "/tmp"
    assert "A=1" in options["environment"]
    assert (options["mem_limit"], options["pids_limit"]) == (64 * MiB, 10)
    assert (options["network_mode"], options["ipc_mode"], options["cgroupns"]) == (
        "host", "host", "host",
    )  # fmt: skip
    assert "pid_mode" not in options and "uts_mode" not in options
    assert options["cap_drop"] == ["ALL"] and "CAP_KILL" in options["cap_add"]
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["labels"] == {"oci.annotation.team": "x"}
    [bind] = options["mounts"]
    assert (bind["Target"], bind["Source"], bind["ReadOnly"]) == ("/data", "/srv", True)
    with pytest.raises(NotApplicableError, match="mount namespace"):
        engine_options(bundle_config(["sh"], namespaces=["pid"]))


def test_container_fixture_on_docker(
    pytester: pytest.Pytester, docker_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # a user's plain pytest
    pytester.makepyfile(
        test_user="""
        def test_runs(container):
            c = container(["sh", "-c", "hostname; echo oops >&2; exit 3"], hostname="web")
            assert c.wait(timeout=20) == 3
            assert (c.stdout(), c.stderr()) == ("web\\n", "oops\\n")

        def test_created_has_no_process(container, runtime_adapter):
            c = container(["true"], start=False)
            assert c.status == "created" and "created-process" in runtime_adapter.unsupported
        """
    )
    ledger_root = pytester.path / "ledger"
    result = pytester.runpytest_subprocess(
        "--runtime=docker", f"--containers-ledger={ledger_root}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*leaked*")
    assert not list(ledger_root.glob("*/*.json"))


# ------------------------------------------------------------------ terminals


def _on_a_terminal(bundle: Path, **process: Any) -> Path:
    """Set ``process.terminal`` (and any other process fields) in the bundle's config."""
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=True, **process)
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_terminal_carries_output_and_typed_input(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    """The program's stdio are one pty; what it writes arrives through the attach stream
    (``\\n`` as ``\\r\\n``), and a line typed into it is read from stdin and echoed."""
    script = (
        "for fd in 0 1 2; do [ -t $fd ] && echo tty$fd; done; echo err >&2; "
        'read -r line; echo "got=$line"; exit 4'
    )
    name = cid()
    adapter.create(name, _on_a_terminal(make(["sh", "-c", script])))
    try:
        assert isinstance(adapter, TerminalAdapter) and TERMINAL not in adapter.unsupported
        terminal = terminal_of(adapter, name)
        assert isinstance(terminal, Terminal)
        adapter.start(name)
        terminal.read_until("err\r\n", timeout=30)
        terminal.write("typed words\n")
        text = terminal.read_until("got=typed words\r\n", timeout=30)
        assert adapter.wait(name, timeout=30) == 4
        assert text.startswith("tty0\r\ntty1\r\ntty2\r\nerr\r\n"), text
        assert "typed words\r\n" in text.removesuffix("got=typed words\r\n"), "no echo"
        terminal.read_all(timeout=10)
        assert terminal.closed, "the Engine did not end the attach stream at the exit"
    finally:
        adapter.delete(name, force=True)
    assert terminal.fd == -1, "delete closes the terminal"
    with pytest.raises(RuntimeCommandError, match=r"process\.terminal"):
        adapter.terminal(name)


def test_terminal_size_is_the_ptys(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    """``size`` reads the container's pty: it follows a resize made through the Engine,
    and the program inside sees the same."""
    name = cid()
    adapter.create(name, _on_a_terminal(make(["sh", "-c", "read -r _; stty size"])))
    try:
        adapter.start(name)
        adapter.client.api.resize(name, 31, 97)
        terminal = adapter.terminal(name)
        assert terminal.size() == (31, 97)
        terminal.write("go\n")
        assert adapter.wait(name, timeout=30) == 0
        assert "31 97\r\n" in terminal.read_all(timeout=10)
        with pytest.raises(RuntimeCommandError, match="no process"):
            terminal.size()  # the pty went with the container's process
    finally:
        adapter.delete(name, force=True)


def test_run_copies_the_terminal_to_stdout(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str], tmp_path: Path
) -> None:
    bundle = _on_a_terminal(make(["sh", "-c", "[ -t 1 ] && echo on-a-tty; exit 3"]))
    with open(tmp_path / "out", "w+b") as out:
        began = time.monotonic()
        assert adapter.run(cid(), bundle, stdio=(0, out.fileno(), out.fileno())) == 3
        assert time.monotonic() - began < 60
    assert (tmp_path / "out").read_bytes() == b"on-a-tty\r\n"


def test_no_terminal_without_process_terminal(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    name = cid()
    adapter.create(name, make(["sleep", "30"]))
    try:
        with pytest.raises(RuntimeCommandError, match=r"not created with process\.terminal"):
            terminal_of(adapter, name)
        adapter.start(name)
        with pytest.raises(TimeoutError, match="still running"):
            adapter.wait(name, timeout=0)
    finally:
        adapter.delete(name, force=True)


def test_console_size_is_not_applicable_on_a_terminal(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    """The Engine sizes a terminal only after start: refused, naming the field, and
    nothing made."""
    name = cid()
    bundle = _on_a_terminal(make(["true"]), consoleSize={"height": 30, "width": 90})
    with pytest.raises(NotApplicableError, match=r"process\.consoleSize.*after start"):
        adapter.create(name, bundle)
    with pytest.raises(ContainerNotFoundError):
        adapter.state(name)


def test_attach_needs_a_plain_socket() -> None:
    """Over TLS the stream is no descriptor to read: terminals are not applicable there."""
    plain = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.41")
    tls = docker.APIClient(base_url="tcp://127.0.0.1:9", tls=True, version="1.41")
    local = docker.APIClient(base_url="unix:///run/pc-none.sock", version="1.41")
    try:
        assert [attachable(c) for c in (plain, tls, local)] == [True, False, True]
    finally:
        for client in (plain, tls, local):
            client.close()


# ------------------------------------------------------------------ warnings


def test_warnings_are_the_engines_answer_to_create(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    """disableOOMKiller without a memory limit: the Engine creates the container and
    warns; the warning is the adapter's until its next verb."""
    assert isinstance(adapter, WarningsAdapter)
    bundle = make(["sh", "-c", "head -n1 /sys/fs/cgroup/memory/memory.oom_control"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"] = {"memory": {"disableOOMKiller": True}}
    (bundle / "config.json").write_text(json.dumps(config))
    name = cid()
    adapter.create(name, bundle)
    try:
        [warning] = warnings_of(adapter)
        assert "OOM killer is disabled" in warning and "no memory limit" in warning
        adapter.start(name)
        assert warnings_of(adapter) == []
        assert adapter.wait(name, timeout=30) == 0
        logs = adapter.client.containers.get(name).logs().decode()
        if os.path.isdir("/sys/fs/cgroup/memory"):  # cgroup v1: the Engine applied it
            assert logs == "oom_kill_disable 1\n"
    finally:
        adapter.delete(name, force=True)
    plain = make(["true"])
    assert adapter.run(cid(), plain) == 0 and adapter.warnings() == []
    assert adapter.run(cid(), bundle) == 0
    assert any("OOM killer is disabled" in w for w in adapter.warnings()), "run keeps create's"


def test_an_unknown_capability_is_refused_not_warned(
    adapter: DockerAdapter, make: Callable[..., Path], cid: Callable[[], str]
) -> None:
    """config.md: a capability that cannot be mapped MUST be logged as a warning. The
    Engine refuses the create with an error instead (RT-PROC-CAPS-6), and makes nothing."""
    bundle = make(["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["capabilities"] = {
        kind: ["CAP_KILL", "CAP_PC_NO_SUCH"] for kind in ("bounding", "effective", "permitted")
    }
    (bundle / "config.json").write_text(json.dumps(config))
    name = cid()
    with pytest.raises(RuntimeCommandError, match='unknown capability: "CAP_PC_NO_SUCH"'):
        adapter.create(name, bundle)
    assert adapter.warnings() == []
    with pytest.raises(ContainerNotFoundError):
        adapter.state(name)


def test_an_empty_id_names_no_container_and_leaves_nothing(
    docker_host: str, make: Callable[..., Path], request: pytest.FixtureRequest
) -> None:
    # The Engine names a container itself when the name is empty: the adapter lets that
    # show (create succeeds, as the Engine does), and removes the container at close.
    tag = ledger(request.config).tag
    adapter = DockerAdapter(docker_host, session=tag)
    try:
        adapter.create("", make(["true"]))
        for verb in (adapter.state, adapter.start, adapter.delete):
            with pytest.raises(ContainerNotFoundError, match="no container has an empty ID"):
                verb("")
    finally:
        adapter.close()
    probe = docker.DockerClient(base_url=docker_host)
    try:
        left = probe.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={tag}"})
    finally:
        probe.close()
    assert left == []
