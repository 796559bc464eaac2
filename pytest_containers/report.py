"""The conformance report: ``--conformance-report=PATH`` (HTML) and ``--conformance-json=PATH``.

When neither option is given and the session collected tests of the conformance suites
(``requirements.is_conformance_test``), the report goes to the paths of the ini values
``conformance_report`` (``reports/conformance.html``) and ``conformance_json``
(``reports/conformance.json``), relative to the rootdir; an empty ini value turns that
file off. Otherwise there is no report unless an option asks for one; option paths are
relative to the directory pytest was started in.

The report is built from the ``Results`` gathered on the controller (see
``requirements``), so it works under ``pytest -n auto``: the files are written by the
controller only, at session end. Workers tell the controller whether they collected
conformance tests (through xdist's ``workeroutput``) and the Hypothesis seed each failing
test ran with (a user property of its report), from which the report's reproduce
commands are made. The data model is ``reportdata``, the rendering ``reporthtml``.
"""

from __future__ import annotations

import platform
import shlex
import socket
import time
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from .reportdata import Report, build
from .reporthtml import must_ids, render_report, verdict_sentence
from .requirements import (
    ENVIRONMENT_KEY,
    REQUIREMENTS_OF_KEY,
    RESULTS_KEY,
    is_conformance_test,
)

WRITER_KEY = pytest.StashKey["ReportWriter"]()

DEFAULT_HTML = "reports/conformance.html"
DEFAULT_JSON = "reports/conformance.json"
SEED_PROPERTY = "hypothesis_seed"
_WORKER_FLAG = "containers_conformance_collected"
# Options that choose what is tested and how: kept in reproduce commands.
_KEEP_OPTIONS = (
    "--runtime",
    "--cluster",
    "--hypothesis-profile",
    "--override-ini",
    "-o",
    "--config-file",
    "-c",
    "--rootdir",
)
# ENVIRONMENT_KEY entries that name the system under test (with "<kind> version").
_SYSTEM_KINDS = ("runtime", "cluster")


class ReportWriter:
    """Where the report goes, and what the session tells it (on the controller)."""

    def __init__(
        self,
        html: Path | None,
        json: Path | None,
        *,
        explicit: bool,
        args: Sequence[str],
        forced_seed: str | None,
    ) -> None:
        self.html, self.json, self.explicit = html, json, explicit
        self.args = tuple(args)
        self.forced_seed = forced_seed
        self.collected_conformance = False
        self.seeds: dict[str, str] = {}  # nodeid -> the seed its failing run used
        self.started = datetime.now(UTC)
        self.clock = time.monotonic()
        self.written: list[Path] = []
        self.report: Report | None = None
        self.error = ""

    @classmethod
    def from_config(cls, config: pytest.Config) -> ReportWriter:
        here, root = config.invocation_params.dir, config.rootpath
        html, json = config.getoption("conformance_report"), config.getoption("conformance_json")
        explicit = html is not None or json is not None
        if explicit:
            paths = [here / p if p else None for p in (html, json)]
        else:
            defaults = (_ini(config, "conformance_report"), _ini(config, "conformance_json"))
            paths = [root / p if p else None for p in defaults]
        seed = config.getoption("--hypothesis-seed", None)
        return cls(
            paths[0],
            paths[1],
            explicit=explicit,
            args=config.invocation_params.args,
            forced_seed=None if seed is None else str(seed),
        )

    def targets(self) -> list[Path]:
        """The files to write: asked for, or the defaults if the suites were collected."""
        if not (self.explicit or self.collected_conformance):
            return []
        return [p for p in (self.html, self.json) if p is not None]

    def reproduce(self, nodeid: str) -> str:
        """The command that reruns one failed test against the same system."""
        quoted = "'" + nodeid.replace("'", "'\\''") + "'"
        args = reproduce_args(self.args)
        seed = self.forced_seed or self.seeds.get(nodeid)
        if seed is not None:
            args.append(f"--hypothesis-seed={seed}")
        return " ".join(["pytest", quoted, *(shlex.quote(a) for a in args)])

    def build(self, config: pytest.Config, exitstatus: int) -> Report:
        known: dict[str, str] = config.stash.get(ENVIRONMENT_KEY, {})
        env = dict(known)
        system = _system(config, env)
        for kind in _SYSTEM_KINDS:
            env.pop(kind, None)
            env.pop(f"{kind} version", None)
        env.update(self._facts(config))
        run = {
            "started": self.started.isoformat(timespec="seconds"),
            "duration": round(time.monotonic() - self.clock, 2),
            "command": shlex.join(["pytest", *self.args]),
            "exit_status": int(exitstatus),
        }
        results = config.stash[RESULTS_KEY]
        return build(results, system=system, environment=env, run=run, reproduce=self.reproduce)

    def _facts(self, config: pytest.Config) -> dict[str, str]:
        from hypothesis import __version__ as hypothesis_version
        from hypothesis import settings

        facts = {
            "kernel": platform.release(),
            "cgroup layout": _cgroup_layout(),
            "hostname": socket.gethostname(),
            "pytest-containers": _version(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "pytest": pytest.__version__,
            "hypothesis": hypothesis_version,
            "hypothesis profile": settings.get_current_profile_name(),
            "hypothesis seed": self.forced_seed
            or "random (each failure's reproduce command has its seed)",
        }
        workers = config.getoption("numprocesses", None)
        if workers:
            facts["xdist workers"] = str(workers)
        return facts

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # every report, on the controller too: note the seed of a failing Hypothesis test
        for name, value in report.user_properties:
            if name == SEED_PROPERTY:
                self.seeds[report.nodeid] = str(value)

    def write(self, report: Report) -> None:
        self.report = report
        for path in self.targets():
            text = render_report(report) if path == self.html else None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if text is None:
                    report.save(path)
                else:
                    path.write_text(text)
            except OSError as exc:
                where = f"{exc.filename}: " if exc.filename and exc.filename != str(path) else ""
                self.error = f"cannot write the conformance report {path}: {where}{exc.strerror}"
                return
            self.written.append(path)


def reproduce_args(args: Sequence[str]) -> list[str]:
    """The arguments of ``args`` that select the system under test and the settings."""
    kept: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.partition("=")[0]
        if arg in _KEEP_OPTIONS and i + 1 < len(args):
            kept += [arg, args[i + 1]]
            i += 1
        elif (name in _KEEP_OPTIONS and "=" in arg) or (
            arg[:2] in ("-o", "-c") and len(arg) > 2 and not arg.startswith("--")
        ):
            kept.append(arg)
        i += 1
    return kept


def _ini(config: pytest.Config, name: str) -> str:
    return str(config.getini(name) or "")


def _system(config: pytest.Config, env: dict[str, str]) -> dict[str, str]:
    kinds = [k for k in _SYSTEM_KINDS if env.get(k)]
    if len(kinds) > 1:  # "reference runtime + reference cluster": say which is which
        names = [f"{env[k]} {k}" for k in kinds]
        versions = [f"{k} {env[f'{k} version']}" for k in kinds if env.get(f"{k} version")]
        return {"name": " + ".join(names), "version": "; ".join(versions)}
    names = [env[k] for k in kinds]
    versions = [env[f"{k} version"] for k in kinds if env.get(f"{k} version")]
    if not names:
        # a runtime module that does not fill ENVIRONMENT_KEY: fall back to its option
        chosen = config.getoption("runtime", None)
        try:
            chosen = chosen or config.getini("runtime")
        except ValueError:  # no such ini value: the runtime module is not loaded
            pass
        if chosen:
            names.append(str(chosen))
    return {"name": " + ".join(names), "version": " + ".join(versions)}


def _cgroup_layout() -> str:
    from reference_runtime.cgroups import detect_layout
    from reference_runtime.errors import CgroupError

    try:
        return str(detect_layout())
    except CgroupError as exc:
        return f"unknown ({exc})"


def _version() -> str:
    try:
        return version("pytest-containers")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("containers", "pytest-containers")
    group.addoption(
        "--conformance-report",
        dest="conformance_report",
        default=None,
        metavar="PATH",
        help="write the HTML conformance report to PATH (default: ini conformance_report, "
        "when the session collected conformance tests)",
    )
    group.addoption(
        "--conformance-json",
        dest="conformance_json",
        default=None,
        metavar="PATH",
        help="write the report as versioned JSON to PATH, for 'pytest-containers report "
        "merge' and 'report diff' (default: ini conformance_json, as above)",
    )
    parser.addini(
        "conformance_report",
        type="string",
        default=DEFAULT_HTML,
        help="HTML report of sessions that collect conformance tests (rootdir-relative; "
        "empty: none)",
    )
    parser.addini(
        "conformance_json",
        type="string",
        default=DEFAULT_JSON,
        help="JSON report of sessions that collect conformance tests (rootdir-relative; "
        "empty: none)",
    )


def pytest_configure(config: pytest.Config) -> None:
    writer = ReportWriter.from_config(config)
    config.stash[WRITER_KEY] = writer
    config.pluginmanager.register(writer, "containers-report-writer")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    collected = any(is_conformance_test(item) for item in items)
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_WORKER_FLAG] = collected  # read by pytest_testnodedown
    elif collected:
        config.stash[WRITER_KEY].collected_conformance = True


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    # xdist, on the controller: a worker is done; it sent its workeroutput
    if getattr(node, "workeroutput", {}).get(_WORKER_FLAG):
        node.config.stash[WRITER_KEY].collected_conformance = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and item.stash.get(REQUIREMENTS_OF_KEY, ()):
        writer = item.config.stash[WRITER_KEY]
        # Hypothesis keeps the seed it drew for a test's last run here (an internal
        # attribute, read defensively); with --hypothesis-seed the forced seed is used.
        seed = getattr(getattr(item, "obj", None), "_hypothesis_internal_use_generated_seed", None)
        if seed is not None and writer.forced_seed is None:
            report.user_properties.append((SEED_PROPERTY, str(seed)))
    return report


def pytest_sessionstart(session: pytest.Session) -> None:
    writer = session.config.stash[WRITER_KEY]
    writer.started = datetime.now(UTC)
    writer.clock = time.monotonic()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    writer = config.stash[WRITER_KEY]
    if hasattr(config, "workerinput") or not writer.targets():
        return  # xdist workers never write: the controller has every worker's results
    writer.write(writer.build(config, exitstatus))
    if writer.error:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    writer = config.stash[WRITER_KEY]
    if writer.error:
        terminalreporter.write_line(f"pytest-containers: {writer.error}", red=True)
    if writer.report is None or not writer.written:
        return
    verdict = writer.report.verdict
    label = writer.report.label or "the system under test"
    terminalreporter.write_sep("-", "conformance report")
    terminalreporter.write_line(
        f"{verdict.summary}: {verdict_sentence(label, verdict, must_ids(writer.report))}",
        green=verdict.conformant,
        red=verdict.summary == "not conformant",
        yellow=verdict.summary == "incomplete",
    )
    for path in writer.written:
        terminalreporter.write_line(f"written to {path}")
