"""``reference-runtime``: the OCI runtime command line, with runc's global flags.

Every error is one line on stderr (``reference-runtime: ...``), also written to
``--log`` in the chosen ``--log-format``, and exit status 1; never a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

PROG = "reference-runtime"
VERSION = "0.1.0"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{PROG}: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    from .runtime import DEFAULT_ROOT

    parser = _Parser(prog=PROG, description="The reference OCI runtime.")
    parser.add_argument(
        "--root", default=DEFAULT_ROOT, help=f"state directory (default {DEFAULT_ROOT})"
    )
    parser.add_argument("--log", help="append log lines to this file")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--version", action="version", version=f"{PROG} {VERSION}\nspec: 1.1.0")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("spec", help="write a default config.json into the bundle")
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument(
        "--rootless", action="store_true", help="map the caller to root in a user namespace"
    )

    for name, text in (
        ("create", "create a container"),
        ("run", "create, start and wait for a container"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--bundle", "-b", default=".")
        p.add_argument("--pid-file")
        p.add_argument(
            "--no-pivot", action="store_true", help="use MS_MOVE + chroot, not pivot_root"
        )
        if name == "run":
            p.add_argument("--detach", "-d", action="store_true", help="start and return at once")
        p.add_argument("id")

    for name, text in (
        ("start", "run the program of a created container"),
        ("state", "print the state JSON"),
    ):
        sub.add_parser(name, help=text).add_argument("id")

    p = sub.add_parser("kill", help="send a signal (default SIGTERM)")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="SIGTERM")

    p = sub.add_parser("delete", help="remove a stopped container")
    p.add_argument("--force", "-f", action="store_true", help="kill it first if it is running")
    p.add_argument("id")

    p = sub.add_parser("list", help="list containers")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("--quiet", "-q", action="store_true", help="IDs only")

    p = sub.add_parser("exec", help="run a command in a created or running container")
    p.add_argument("--env", "-e", action="append", default=[], help="KEY=VALUE, repeatable")
    p.add_argument("--cwd")
    p.add_argument("--user", "-u", help="UID[:GID]")
    p.add_argument("id")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    return parser


class _Log:
    def __init__(self, path: str | None, fmt: str) -> None:
        self.path = path
        self.fmt = fmt

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        if self.fmt == "json":
            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg="{msg}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:  # a log that cannot be written must not hide the real outcome
            pass


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = _parser().parse_args(argv)
    log = _Log(args.log, args.log_format)
    from .errors import RuntimeSpecError

    try:
        code = _dispatch(args, log)
    except RuntimeSpecError as exc:
        _fail(log, str(exc))
    except KeyboardInterrupt:
        _fail(log, "interrupted")
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(log, f"{exc.strerror or exc}{where}")
    except Exception as exc:  # keep the one-line promise even for our own bugs
        _fail(log, f"internal error: {type(exc).__name__}: {exc}")
    sys.exit(code)


def _fail(log: _Log, msg: str) -> NoReturn:
    log.write("error", msg)
    sys.stderr.write(f"{PROG}: {msg}\n")
    sys.exit(1)


def _dispatch(args: argparse.Namespace, log: _Log) -> int:
    from .runtime import Runtime

    if args.command == "spec":
        return _spec(args)
    rt = Runtime(args.root, no_pivot=getattr(args, "no_pivot", False))
    command = args.command
    if command == "create":
        state = rt.create(args.id, args.bundle, pid_file=args.pid_file)
        log.write("info", f"created {args.id} pid {state.pid}")
    elif command == "start":
        for warning in rt.start(args.id):
            log.write("warning", warning)
    elif command == "state":
        print(json.dumps(rt.state(args.id).spec_state(), indent=2))
    elif command == "kill":
        rt.kill(args.id, args.signal)
    elif command == "delete":
        for warning in rt.delete(args.id, force=args.force):
            log.write("warning", warning)
    elif command == "list":
        _list(rt, args)
    elif command == "exec":
        return _exec(rt, args)
    elif command == "run":
        return _run(rt, args, log)
    return 0


def _spec(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .spec import default_spec

    target = Path(args.bundle) / "config.json"
    if target.exists():
        raise ConfigError(f"{target} already exists: remove it first")
    target.write_text(json.dumps(default_spec(rootless=args.rootless), indent=2) + "\n")
    return 0


def _list(rt: Any, args: argparse.Namespace) -> None:
    states = rt.list()
    if args.quiet:
        for state in states:
            print(state.id)
    elif args.format == "json":
        print(json.dumps([s.spec_state() for s in states], indent=2))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        for s in states:
            spec = s.spec_state()
            rows.append(
                (s.id, str(spec.get("pid", 0)), s.status.value, s.bundle, s.created, spec["owner"])
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _exec(rt: Any, args: argparse.Namespace) -> int:
    from .errors import ConfigError

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise ConfigError("exec needs a command: reference-runtime exec ID CMD [ARG...]")
    user = None
    if args.user:
        try:
            uid, _, gid = args.user.partition(":")
            user = (int(uid), int(gid or uid))
        except ValueError:
            raise ConfigError(f"--user {args.user!r} must be UID or UID:GID") from None
    code: int = rt.exec(args.id, cmd, env=args.env or None, cwd=args.cwd, user=user)
    return code


def _run(rt: Any, args: argparse.Namespace, log: _Log) -> int:
    rt.create(args.id, args.bundle, pid_file=args.pid_file)
    try:
        if args.detach:
            rt.start(args.id)
            return 0
        pid = rt.state(args.id).pid

        def forward(signum: int, frame: object) -> None:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # it already exited
                pass

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, forward)
        for warning in rt.start(args.id):
            log.write("warning", warning)
        code: int = rt.wait(args.id)
        return code
    finally:
        if not args.detach:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            rt.delete(args.id, force=True)


if __name__ == "__main__":
    main()
