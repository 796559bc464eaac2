"""``reference-runtime``: the OCI runtime command line, with runc's global flags.

Every error is one line on stderr (``reference-runtime: ...``), also written to
``--log`` in the chosen ``--log-format``, and exit status 1; never a traceback.

The arguments are parsed by the small table below rather than ``argparse``: the CLI
is started once per container verb, and ``argparse`` (with ``re`` and ``gettext``)
costs more start-up time than the verb itself.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

    from .runtime import Runtime

PROG = "reference-runtime"
VERSION = "0.1.0"
DEFAULT_ROOT = "/run/reference-runtime"

# command: (options {flag: (name, takes_value)}, positionals, help)
_COMMON_CREATE = {
    "--bundle": ("bundle", True),
    "-b": ("bundle", True),
    "--pid-file": ("pid_file", True),
    "--no-pivot": ("no_pivot", False),
    "--console-socket": ("console_socket", True),
}
COMMANDS: dict[str, tuple[dict[str, tuple[str, bool]], tuple[str, ...], str]] = {
    "spec": (
        {"--bundle": ("bundle", True), "-b": ("bundle", True), "--rootless": ("rootless", False)},
        (),
        "write a default config.json into the bundle",
    ),
    "create": (_COMMON_CREATE, ("id",), "create a container from a bundle (default: .)"),
    "start": ({}, ("id",), "run the program of a created container"),
    "state": ({}, ("id",), "print the runtime-spec state JSON"),
    "kill": ({}, ("id", "signal?"), "send a signal (default SIGTERM)"),
    "delete": (
        {"--force": ("force", False), "-f": ("force", False)},
        ("id",),
        "remove a stopped container (--force: kill it first)",
    ),
    "run": (
        {**_COMMON_CREATE, "--detach": ("detach", False), "-d": ("detach", False)},
        ("id",),
        "create, start and wait for a container, then delete it",
    ),
    "list": (
        {
            "--format": ("format", True),
            "-f": ("format", True),
            "--quiet": ("quiet", False),
            "-q": ("quiet", False),
        },
        (),
        "list containers",
    ),
    "exec": (
        {
            "--env": ("env", True),
            "-e": ("env", True),
            "--cwd": ("cwd", True),
            "--user": ("user", True),
            "-u": ("user", True),
            "--tty": ("tty", False),
            "-t": ("tty", False),
            "--console-socket": ("console_socket", True),
        },
        ("id", "cmd..."),
        "run a command in a created or running container",
    ),
}
_GLOBAL = {"--root": "root", "--log": "log", "--log-format": "log_format"}


class UsageError(Exception):
    """The command line is wrong."""


def _usage() -> str:
    lines = [
        f"usage: {PROG} [--root DIR] [--log FILE] [--log-format text|json] COMMAND [ARGS]",
        "",
        "The reference OCI runtime.",
        "",
        "commands:",
    ]
    for name, (options, positionals, text) in COMMANDS.items():
        flags = " ".join(
            sorted(
                {f"[{o}{' X' if v else ''}]" for o, (_, v) in options.items() if o.startswith("--")}
            )
        )
        args = " ".join(p.upper() for p in positionals)
        lines.append(f"  {name} {flags} {args}".rstrip())
        lines.append(f"      {text}")
    lines += [
        "",
        f"global options: --root DIR (default {DEFAULT_ROOT}), --log FILE, --log-format text|json",
    ]
    return "\n".join(lines)


def parse(argv: Sequence[str]) -> dict[str, Any]:
    """Parse the command line into a dict; raise ``UsageError`` with a one-line reason."""
    args: dict[str, Any] = {"root": DEFAULT_ROOT, "log": None, "log_format": "text", "env": []}
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        flag, _, value = rest.pop(0).partition("=")
        if flag in ("-h", "--help"):
            args["command"] = "help"
            return args
        if flag in ("-v", "--version"):
            args["command"] = "version"
            return args
        if flag not in _GLOBAL:
            raise UsageError(f"unknown global option {flag}")
        if not value:
            if not rest:
                raise UsageError(f"{flag} needs a value")
            value = rest.pop(0)
        args[_GLOBAL[flag]] = value
    if args["log_format"] not in ("text", "json"):
        raise UsageError(f"--log-format must be text or json, not {args['log_format']!r}")
    if not rest:
        raise UsageError("a command is required: " + ", ".join(COMMANDS))
    command = rest.pop(0)
    if command not in COMMANDS:
        raise UsageError(f"invalid choice {command!r}: choose from {', '.join(COMMANDS)}")
    args["command"] = command
    options, positionals, _ = COMMANDS[command]
    found: list[str] = []
    while rest:
        item = rest.pop(0)
        if item == "--":
            found.extend(rest)
            break
        if (
            item.startswith("-")
            and item != "-"
            and not (positionals[-1:] == ("cmd...",) and len(found) >= 1)
        ):
            flag, eq, value = item.partition("=")
            if flag in ("-h", "--help"):
                args["command"] = "help"
                return args
            if flag not in options:
                raise UsageError(f"{command}: unknown option {flag}")
            name, takes_value = options[flag]
            if not takes_value:
                args[name] = True
                continue
            if not eq:
                if not rest:
                    raise UsageError(f"{command}: {flag} needs a value")
                value = rest.pop(0)
            if name == "env":
                args["env"].append(value)
            else:
                args[name] = value
        else:
            found.append(item)
    for i, name in enumerate(positionals):
        if name == "cmd...":
            args["cmd"] = found[i:]
            found = found[:i]
            if not args["cmd"]:
                raise UsageError(
                    f"{command}: a command to run is required: {command} ID CMD [ARG...]"
                )
            break
        if i < len(found):
            args[name.rstrip("?")] = found[i]
        elif not name.endswith("?"):
            raise UsageError(f"{command}: the following arguments are required: {name.upper()}")
    extra = found[len([p for p in positionals if p != "cmd..."]) :]
    if extra and "cmd..." not in positionals:
        raise UsageError(f"{command}: unexpected arguments {' '.join(extra)}")
    return args


def _log(args: dict[str, Any], level: str, msg: str) -> None:
    path = args.get("log")
    if not path:
        return
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.get("log_format") == "json":
        from ._lite import dumps

        line = dumps({"level": level, "msg": msg, "time": now})
    else:
        line = f'time="{now}" level={level} msg="{msg}"'
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:  # a log that cannot be written must not hide the real outcome
        pass


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args: dict[str, Any] = {}
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        code = _dispatch(args)
    except UsageError as exc:
        _fail(args, f"{exc} (see '{PROG} --help')")
    except KeyboardInterrupt:
        _fail(args, "interrupted")
    except Exception as exc:
        from .errors import RuntimeSpecError

        if isinstance(exc, RuntimeSpecError):
            _fail(args, str(exc))
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            _fail(args, f"{exc.strerror or exc}{where}")
        # keep the one-line promise even for our own bugs
        _fail(args, f"internal error: {type(exc).__name__}: {exc}")
    if argv is not None:
        sys.exit(code)
    # As a command: skip the interpreter's teardown, which only costs time here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fail(args: dict[str, Any], msg: str) -> NoReturn:
    _log(args, "error", msg)
    sys.stderr.write(f"{PROG}: {msg}\n")
    sys.exit(1)


def _dispatch(args: dict[str, Any]) -> int:
    command = args["command"]
    if command == "help":
        print(_usage())
        return 0
    if command == "version":
        from .spec import OCI_VERSION

        print(f"{PROG} version {VERSION}\nspec: {OCI_VERSION}")
        return 0
    if command == "spec":
        return _spec(args)
    from .runtime import Runtime

    rt = Runtime(args["root"], no_pivot=bool(args.get("no_pivot")))
    if command == "create":
        state = rt.create(
            args["id"],
            args.get("bundle") or ".",
            pid_file=args.get("pid_file"),
            console_socket=args.get("console_socket"),
        )
        for warning in state.warnings:
            _log(args, "warning", warning)
        _log(args, "info", f"created {args['id']} pid {state.pid}")
    elif command == "start":
        for warning in rt.start(args["id"]):
            _log(args, "warning", warning)
    elif command == "state":
        from ._lite import dumps

        print(dumps(rt.state(args["id"]).spec_state(), indent=2))
    elif command == "kill":
        rt.kill(args["id"], args.get("signal") or "SIGTERM")
    elif command == "delete":
        for warning in rt.delete(args["id"], force=bool(args.get("force"))):
            _log(args, "warning", warning)
    elif command == "list":
        _list(rt, args)
    elif command == "exec":
        return _exec(rt, args)
    elif command == "run":
        return _run(rt, args)
    return 0


def _spec(args: dict[str, Any]) -> int:
    from ._lite import dumps
    from .errors import ConfigError
    from .spec import default_spec

    target = os.path.join(args.get("bundle") or ".", "config.json")
    if os.path.exists(target):
        raise ConfigError(f"{target} already exists: remove it first")
    with open(target, "w") as f:
        f.write(dumps(default_spec(rootless=bool(args.get("rootless"))), indent=2) + "\n")
    return 0


def _list(rt: Runtime, args: dict[str, Any]) -> None:
    states = rt.list()
    if args.get("quiet"):
        for state in states:
            print(state.id)
        return
    fmt = args.get("format") or "table"
    if fmt == "json":
        from ._lite import dumps

        print(dumps([s.spec_state() for s in states], indent=2))
        return
    if fmt != "table":
        raise UsageError(f"list: --format must be table or json, not {fmt!r}")
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for s in states:
        spec = s.spec_state()
        rows.append(
            (s.id, str(spec.get("pid", 0)), str(s.status), s.bundle, s.created, spec["owner"])
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _exec(rt: Runtime, args: dict[str, Any]) -> int:
    user = None
    if args.get("user"):
        try:
            uid, _, gid = args["user"].partition(":")
            user = (int(uid), int(gid or uid))
        except ValueError:
            raise UsageError(f"exec: --user {args['user']!r} must be UID or UID:GID") from None
    if bool(args.get("tty")) != bool(args.get("console_socket")):
        raise UsageError("exec: --tty and --console-socket PATH go together")
    return rt.exec(
        args["id"],
        args["cmd"],
        env=args["env"] or None,
        cwd=args.get("cwd"),
        user=user,
        console_socket=args.get("console_socket"),
    )


def _run(rt: Runtime, args: dict[str, Any]) -> int:
    import _signal

    container_id = args["id"]
    state = rt.create(
        container_id,
        args.get("bundle") or ".",
        pid_file=args.get("pid_file"),
        console_socket=args.get("console_socket"),
    )
    for warning in state.warnings:
        _log(args, "warning", warning)
    if args.get("detach"):
        try:
            rt.start(container_id)
        except BaseException:
            rt.delete(container_id, force=True)
            raise
        return 0
    try:
        pid = rt.state(container_id).pid

        def forward(signum: int, frame: object) -> None:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # it already exited
                pass

        for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT):
            _signal.signal(sig, forward)
        for warning in rt.start(container_id):
            _log(args, "warning", warning)
        return rt.wait(container_id)
    finally:
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            _signal.signal(sig, _signal.SIG_IGN)
        rt.delete(container_id, force=True)


if __name__ == "__main__":
    main()
