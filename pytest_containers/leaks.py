"""The leak check: at the end of a session, what the plugin made must be gone.

After every fixture is torn down, each pytest process (the only one, or each xdist
worker) looks for what it made and did not remove:

- records still in its ledger (a resource whose undo never ran or failed);
- on the live system, anything named with its own prefix ``pc-<worker>-<pid>-``:
  network namespaces (``/run/netns``), cgroup directories at the root of every
  mounted hierarchy, mounts (``/proc/self/mountinfo``) and state directories under
  ``/run/pytest-containers`` (and the ledger root's parent);
- processes it recorded (by PID and start time) that still run;
- Docker containers labelled ``pytest-containers.session=<ledger tag>``, when a Docker
  daemon answers within a second (skipped silently otherwise).

Each leak is printed on one line (``pytest-containers: leaked netns pc-main-4242-3``);
what can be undone safely (ledger records, namespaces, cgroups) is removed right away and
the line says so. Then the session fails (exit status 1) — unless the ini value
``containers_leak_check`` (or ``--containers-leak-check``) is ``warn`` (a warning line,
the status is kept) or ``off`` (no check). xdist workers send their lines to the
controller, which prints them and fails the run. When a worker dies, the controller
reaps what it left at once (``pytest-containers: reaped ...``); a killed
single-process session is reaped by the next session's start.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import pytest

from reference_runtime.cgroups import discover_mounts
from reference_runtime.cgroups import tree as cgroup_tree

from .ledger import DEFAULT_ROOT, Ledger, Record, process_start_time, reap_dead, undoer_for
from .netns import NETNS_DIR, remove_netns
from .plugin import ledger

LEAKS_KEY = pytest.StashKey["LeakCheck"]()
WORKER_LINES_KEY = pytest.StashKey[list[str]]()
"""On the xdist controller: the leak lines the workers sent."""

MODES = ("fail", "warn", "off")
WORKEROUTPUT_KEY = "pytest_containers_leaks"
DOCKER_LABEL = "pytest-containers.session"
STATE_ROOT = DEFAULT_ROOT.parent
PREFIX = "pytest-containers:"


@dataclass(frozen=True)
class Leak:
    """Something left behind: a one-line description and, if it is safe, how to remove it."""

    what: str
    undo: Callable[[], None] | None = None


class LeakCheck:
    """The leak check of one pytest process."""

    def __init__(self, led: Ledger, mode: Literal["fail", "warn", "off"] = "fail") -> None:
        self.ledger = led
        self.mode = mode

    @classmethod
    def from_config(cls, config: pytest.Config) -> LeakCheck:
        mode = config.getoption("containers_leak_check") or config.getini("containers_leak_check")
        if mode not in MODES:
            raise pytest.UsageError(
                f"containers_leak_check must be one of {', '.join(MODES)}, got {mode!r}"
            )
        return cls(ledger(config), cast(Literal["fail", "warn", "off"], mode))

    def find(self) -> list[Leak]:
        """Everything this process made that is still there."""
        prefix = self.ledger.name_prefix("pc")
        records = self.ledger.outstanding()
        known = {rec.name for rec in records}
        leaks = [_record_leak(self.ledger, rec) for rec in records]
        netns = _stray_netns(prefix, known)
        leaks += [
            Leak(f"netns {name} (in {NETNS_DIR}, not in the ledger)", partial(remove_netns, name))
            for name in netns
        ]
        leaks += _cgroup_leaks(prefix, known)
        leaks += _mount_leaks(prefix, known | set(netns))
        roots = {STATE_ROOT, self.ledger.root.parent}
        leaks += _state_dir_leaks(prefix, roots, self.ledger.root)
        leaks += _docker_leaks(self.ledger.tag)
        return leaks

    def run(self) -> list[str]:
        """Find the leaks, remove what is safe to, and return one line for each."""
        lines = []
        for leak in self.find():
            status = ""
            if leak.undo is not None:
                try:
                    leak.undo()
                    status = " (removed now)"
                except Exception as exc:
                    status = f" (could not remove it: {exc})"
            lines.append(f"{PREFIX} leaked {leak.what}{status}")
        return lines


def _record_leak(led: Ledger, rec: Record) -> Leak:
    what = rec.describe()
    if rec.kind == "process":
        pid, start = int(rec.details.get("pid", 0)), int(rec.details.get("start") or 0)
        alive = bool(pid) and process_start_time(pid) == start
        what += " still running" if alive else " (exited; its record was never released)"
    undo = undoer_for(rec.kind)

    def undo_and_release() -> None:
        if undo is not None:
            undo(rec)
        led.release(rec)

    return Leak(what, undo_and_release if undo is not None else None)


def _stray_netns(prefix: str, known: set[str]) -> list[str]:
    """Named network namespaces with ``prefix`` that no ledger record accounts for."""
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:  # no namespace was ever named on this host
        return []
    return [name for name in names if name.startswith(prefix) and name not in known]


def _cgroup_leaks(prefix: str, known: set[str]) -> list[Leak]:
    mounts = discover_mounts()
    roots = [h.mountpoint for h in mounts.v1] + ([mounts.v2] if mounts.v2 else [])
    found: dict[str, list[str]] = {}
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except FileNotFoundError:  # unmounted meanwhile
            continue
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name not in known and entry.is_dir():
                found.setdefault(entry.name, []).append(entry.path)

    def remover(dirs: list[str]) -> Callable[[], None]:
        def remove() -> None:
            cgroup_tree.kill_all(dirs)
            cgroup_tree.remove_created(dirs, dirs)

        return remove

    return [
        Leak(f"cgroup {name} ({', '.join(dirs)}; not in the ledger)", remover(dirs))
        for name, dirs in sorted(found.items())
    ]


def _mount_leaks(prefix: str, reported: set[str]) -> list[Leak]:
    """Mounts at or below a path named with ``prefix`` (a netns already named is skipped)."""
    leaks = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if f"/{prefix}" not in point:
                continue
            if os.path.dirname(point) == NETNS_DIR and os.path.basename(point) in reported:
                continue
            fstype = line.split(" - ")[-1].split()[0]
            leaks.append(Leak(f"mount {point} ({fstype})"))
    return leaks


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` is a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _state_dir_leaks(prefix: str, roots: Iterable[Path], ledger_root: Path) -> list[Leak]:
    leaks = []
    for root in sorted(roots):
        for level in (root.glob(f"{prefix}*"), root.glob(f"*/{prefix}*")):
            for path in sorted(level):
                if ledger_root not in path.parents:
                    leaks.append(Leak(f"state directory {path}"))
    return leaks


def _docker_leaks(tag: str) -> list[Leak]:
    """Containers labelled with this session's tag, if a daemon answers quickly."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(0.5)
                probe.connect(path)
        except OSError:  # no daemon here: nothing can have been made through it
            return []
    try:
        import docker

        client = docker.DockerClient(base_url=host, timeout=1)
        try:
            found = client.containers.list(all=True, filters={"label": f"{DOCKER_LABEL}={tag}"})
            names: list[Any] = [c.name for c in found]
        finally:
            client.close()
    except Exception:  # no SDK, no daemon, or too slow: skipped silently, as documented
        return []
    return [Leak(f"docker container {name} (label {DOCKER_LABEL}={tag})") for name in names]


def _wait_until_gone(root: Path, worker: str, timeout: float = 2.0) -> None:
    """Wait (bounded) until the processes of ``worker``'s ledger directories have died:
    the controller can see a killed worker's pipes close before the process is gone."""
    try:
        tags = [d.name for d in root.iterdir() if d.name.startswith(f"{worker}-")]
    except FileNotFoundError:  # the worker never recorded anything
        return
    deadline = time.monotonic() + timeout
    while tags and time.monotonic() < deadline:
        tags = [tag for tag in tags if _alive(tag)]
        if tags:
            time.sleep(0.01)


def _alive(tag: str) -> bool:
    try:
        _, pid, start = tag.rsplit("-", 2)
        return process_start_time(int(pid)) == int(start)
    except ValueError:  # not a ledger directory's name
        return False


def _report(config: pytest.Config, lines: list[str], **markup: bool) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        print(*lines, sep="\n")
    elif lines:
        reporter.write("\n")  # the progress line ("[100%]") may still be open
        for line in lines:
            reporter.write_line(line, **markup)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("containers", "pytest-containers")
    group.addoption(
        "--containers-leak-check",
        dest="containers_leak_check",
        default=None,
        choices=MODES,
        help="at session end: fail on leaked resources, warn, or skip the check "
        "(default: ini containers_leak_check, fail)",
    )
    parser.addini(
        "containers_leak_check",
        type="string",
        default="fail",
        help="fail (default), warn or off: what to do about resources left at session end",
    )


@pytest.hookimpl(trylast=True)  # after plugin.py has made the ledger
def pytest_configure(config: pytest.Config) -> None:
    config.stash[LEAKS_KEY] = LeakCheck.from_config(config)
    config.stash[WORKER_LINES_KEY] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """xdist controller: collect a worker's leak lines; reap what a dead worker left."""
    config: pytest.Config = node.config
    output = getattr(node, "workeroutput", None) or {}
    config.stash[WORKER_LINES_KEY].extend(output.get(WORKEROUTPUT_KEY, []))
    if error is not None:
        root = ledger(config).root
        _wait_until_gone(root, str(node.gateway.id))
        undone, failed = reap_dead(root)
        _report(config, [f"{PREFIX} reaped {line} left by a dead worker" for line in undone])
        _report(config, [f"{PREFIX} could not reap {line}" for line in failed], red=True)


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown and every other plugin
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    check = config.stash[LEAKS_KEY]
    if check.mode != "off":
        lines = config.stash[WORKER_LINES_KEY] + check.run()
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller reports
            workeroutput[WORKEROUTPUT_KEY] = lines
        elif lines and check.mode == "warn":
            _report(config, [*lines, f"{PREFIX} warning: {len(lines)} leaked"], yellow=True)
        elif lines:
            summary = (
                f"{PREFIX} {len(lines)} leaked; the session fails "
                "(ini containers_leak_check = warn or off to change that)"
            )
            _report(config, [*lines, summary], red=True)
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    check.ledger.close()
