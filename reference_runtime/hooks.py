"""Lifecycle hooks (runtime-spec config.md "POSIX-platform Hooks").

Each hook gets the container's state JSON on stdin. prestart, createRuntime,
poststart and poststop run in the runtime's namespaces; createContainer and
startContainer run in the container's (the init process calls ``run_all`` there).
"""

from __future__ import annotations

from . import _lite
from .errors import HookError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Hook


def run(hook: Hook, state: dict[str, Any], stage: str) -> None:
    """Run one hook; raise ``HookError`` if it fails, times out or cannot start."""
    __tracebackhide__ = True
    import subprocess  # only when a config has hooks: it is slow to import

    argv = list(hook.args) if hook.args else [hook.path]
    env = dict(item.split("=", 1) for item in hook.env)
    try:
        result = subprocess.run(
            argv,
            executable=hook.path,
            input=_lite.dumps(state).encode(),
            env=env,
            capture_output=True,
            timeout=hook.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HookError(f"{stage} hook {hook.path} timed out after {hook.timeout}s") from None
    except OSError as exc:
        raise HookError(f"{stage} hook {hook.path} could not run: {exc.strerror}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        last = f": {detail[-1]}" if detail else ""
        raise HookError(f"{stage} hook {hook.path} exited with status {result.returncode}{last}")


def run_all(hooks: tuple[Hook, ...], state: dict[str, Any], stage: str) -> None:
    """Run hooks in order; the first failure stops the rest (runtime-spec)."""
    for hook in hooks:
        run(hook, state, stage)


def run_all_warn(hooks: tuple[Hook, ...], state: dict[str, Any], stage: str) -> list[str]:
    """Run every hook; failures are returned as warnings (poststart, poststop)."""
    warnings = []
    for hook in hooks:
        try:
            run(hook, state, stage)
        except HookError as exc:
            warnings.append(str(exc))
    return warnings
