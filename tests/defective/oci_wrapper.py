#!/usr/bin/python3 -I
"""A deliberately broken OCI runtime: ``runc`` with exactly one defect.

The defect is the name the script is run under (a symlink to it), e.g.
``no-pid-namespace create --bundle B ID``. Every argument goes to ``runc`` (or
``$OCI_WRAPPER_RUNTIME``) unchanged, except what the defect breaks:

- a config defect edits the bundle's ``config.json`` for ``create`` and ``run`` only,
  and puts the original bytes back once ``runc`` has exited, so the bundle is left as
  it was given;
- an argument defect rewrites the verb's arguments and then becomes ``runc``;
- a state defect rewrites the JSON that ``runc state`` prints.

Everything else is runc's own behaviour: its state, its cleanup, its errors. Used by
``tests/test_defective_runtimes.py`` to show the conformance suite catches each defect.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Config = dict[str, Any]

# runc's global options that take a value (as "--opt VALUE" or "--opt=VALUE")
_GLOBAL_VALUES = {"--root", "--log", "--log-format", "--criu", "--rootless"}


# ------------------------------------------------------------------ config defects


def _without_namespace(kind: str) -> Callable[[Config], None]:
    def edit(config: Config) -> None:
        linux = config.get("linux", {})
        linux["namespaces"] = [n for n in linux.get("namespaces", []) if n.get("type") != kind]

    return edit


def _without_resource(*path: str) -> Callable[[Config], None]:
    def edit(config: Config) -> None:
        node = config.get("linux", {}).get("resources", {})
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)

    return edit


def _drop_masked_paths(config: Config) -> None:
    config.get("linux", {}).pop("maskedPaths", None)


def _writable_root(config: Config) -> None:
    config.get("root", {})["readonly"] = False


def _all_capabilities(config: Config) -> None:
    # every capability runc knows, as `runc features` lists them
    features = subprocess.run(
        [_runtime(), "features"], capture_output=True, check=True, timeout=30
    ).stdout
    everything = json.loads(features)["linux"]["capabilities"]
    caps = config.get("process", {}).get("capabilities")
    if caps is not None:
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = list(everything)


def _no_hostname(config: Config) -> None:
    config.pop("hostname", None)


def _no_creation_hooks(config: Config) -> None:
    hooks = config.get("hooks", {})
    hooks.pop("prestart", None)
    hooks.pop("createRuntime", None)


def _no_rlimits(config: Config) -> None:
    config.get("process", {}).pop("rlimits", None)


def _root_user(config: Config) -> None:
    user = config.get("process", {}).get("user")
    if user is not None:
        user["uid"] = 0


CONFIG_DEFECTS: dict[str, Callable[[Config], None]] = {
    "no-pid-namespace": _without_namespace("pid"),
    "no-network-namespace": _without_namespace("network"),
    "no-masked-paths": _drop_masked_paths,
    "no-memory-limit": _without_resource("memory", "limit"),
    "no-pids-limit": _without_resource("pids"),
    "writable-root": _writable_root,
    "all-capabilities": _all_capabilities,
    "no-hostname": _no_hostname,
    "no-creation-hooks": _no_creation_hooks,
    "no-rlimits": _no_rlimits,
    "ignores-uid": _root_user,
}

# ------------------------------------------------------------------ argument defects


def _kill_always_sigkill(args: list[str]) -> list[str]:
    # kill [--all] ID [SIGNAL]: the signal, if given, is the last operand after the ID
    operands = [a for a in args if not a.startswith("-")]
    if len(operands) >= 2:
        return [*args[:-1], "KILL"]
    return [*args, "KILL"]


def _delete_always_forced(args: list[str]) -> list[str]:
    return args if "--force" in args or "-f" in args else ["--force", *args]


ARG_DEFECTS: dict[str, tuple[str, Callable[[list[str]], list[str]]]] = {
    "kill-always-sigkill": ("kill", _kill_always_sigkill),
    "delete-always-forced": ("delete", _delete_always_forced),
}

# ------------------------------------------------------------------ state defects


def _created_says_running(state: Config) -> None:
    if state.get("status") == "created":
        state["status"] = "running"


def _pid_of_a_helper(state: Config) -> None:
    # the PID of a short-lived helper (this process) instead of the container's
    if state.get("pid"):
        state["pid"] = os.getpid()


STATE_DEFECTS: dict[str, Callable[[Config], None]] = {
    "state-created-says-running": _created_says_running,
    "state-wrong-pid": _pid_of_a_helper,
}

DEFECTS = sorted([*CONFIG_DEFECTS, *ARG_DEFECTS, *STATE_DEFECTS])


# ------------------------------------------------------------------ the wrapper


def split_verb(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(global options, verb, the verb's arguments) of a runc command line."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _GLOBAL_VALUES else 1
    if i >= len(argv):
        return argv, "", []
    return argv[:i], argv[i], argv[i + 1 :]


def bundle_of(args: list[str]) -> Path:
    for i, arg in enumerate(args):
        if arg in ("--bundle", "-b") and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--bundle="):
            return Path(arg.partition("=")[2])
    return Path(".")


def with_edited_config(runtime: str, argv: list[str], bundle: Path, edit: Any) -> int:
    """Run ``runtime argv`` with ``edit`` applied to ``bundle/config.json``, then restore it."""
    path = bundle / "config.json"
    try:
        original = path.read_bytes()
        config = json.loads(original)
    except (OSError, ValueError):  # runc gives the error about a config it cannot read
        os.execv(runtime, [runtime, *argv])
    edit(config)
    path.write_bytes(json.dumps(config).encode())
    try:
        return subprocess.run([runtime, *argv], check=False).returncode
    finally:
        path.write_bytes(original)


def with_edited_state(runtime: str, argv: list[str], edit: Any) -> int:
    proc = subprocess.run([runtime, *argv], stdout=subprocess.PIPE, check=False)
    out = proc.stdout
    if proc.returncode == 0:
        state = json.loads(out)
        edit(state)
        out = json.dumps(state, indent=2).encode() + b"\n"
    sys.stdout.buffer.write(out)
    return proc.returncode


def _runtime() -> str:
    """The real runtime's path ("" when it is not there)."""
    return shutil.which(os.environ.get("OCI_WRAPPER_RUNTIME", "runc")) or ""


def main(argv: list[str]) -> int:
    defect = os.path.basename(argv[0]).removesuffix(".py")
    runtime = _runtime()
    if defect not in DEFECTS:
        print(
            f"{defect}: unknown defect; run this script through a symlink named one of: "
            + ", ".join(DEFECTS),
            file=sys.stderr,
        )
        return 1
    if not runtime:
        print(f"{defect}: runc not found on PATH (or set OCI_WRAPPER_RUNTIME)", file=sys.stderr)
        return 1
    args = argv[1:]
    options, verb, rest = split_verb(args)
    if defect in CONFIG_DEFECTS and verb in ("create", "run"):
        return with_edited_config(runtime, args, bundle_of(rest), CONFIG_DEFECTS[defect])
    if defect in ARG_DEFECTS and verb == ARG_DEFECTS[defect][0]:
        args = [*options, verb, *ARG_DEFECTS[defect][1](rest)]
    elif defect in STATE_DEFECTS and verb == "state":
        return with_edited_state(runtime, args, STATE_DEFECTS[defect])
    os.execv(runtime, [runtime, *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
