"""What the runtime must log as a warning (config.md#linux-process), read from the
runtime's own log through the adapter (``warnings_of``: the ``warning`` entries of
``--log-format json`` for OCI runtimes, the warnings of the reference runtime).

A warning may come from ``create`` or from ``start``: both are collected.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_containers.adapters import warnings_of
from pytest_containers.errors import RuntimeCommandError
from pytest_containers.runtime import ContainerFactory

from ._support import Config, Edit, edit_config, expressible
from .test_process import CAPABILITIES as _NUMBERED  # by number, linux/capability.h

WAIT = 30.0
UNKNOWN = "CAP_PYTEST_CONTAINERS_NO_SUCH_CAPABILITY"


def _not_held() -> str | None:
    """A capability this kernel knows that our own bounding set lacks (a runtime we
    start on the host kernel cannot grant it); None when we hold them all."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
            missing = [n for i, n in enumerate(_NUMBERED[: last + 1]) if not bounding >> i & 1]
            return missing[0] if missing else None
    return None


def _asking_for(name: str) -> Edit:
    def edit(config: Config) -> None:
        config["process"]["args"] = ["grep", "^CapEff:", "/proc/self/status"]
        config["process"]["capabilities"] = {
            kind: ["CAP_KILL", name] for kind in ("bounding", "effective", "permitted")
        }

    return edit


@pytest.mark.requirement("RT-PROC-CAPS-6")
@pytest.mark.parametrize("kind", ["unknown", "not-held"])
def test_a_capability_that_cannot_be_granted_is_logged_as_a_warning(
    container_factory: ContainerFactory, tmp_path: Path, kind: str
) -> None:
    """A name no kernel maps must be logged as a warning; so must a capability the
    runtime cannot grant (here one our own bounding set lacks), unless the container
    shows it granted after all (gVisor's kernel can grant what the host lacks)."""
    name = UNKNOWN if kind == "unknown" else _not_held()
    if name is None:
        pytest.skip("this process holds every capability the kernel knows: none to lack")
    bundle = edit_config(container_factory.make_bundle(tmp_path), _asking_for(name))
    adapter = container_factory.adapter
    logged: list[str] = []
    with expressible():
        try:
            handle = container_factory.make_container(tmp_path, bundle=bundle, start=False)
        except RuntimeCommandError as exc:
            logged = warnings_of(adapter)
            if any(name in w for w in logged):
                return  # warned, then refused: the warning is there (failing is CAPS-7's)
            pytest.fail(
                f"create failed with an error, and no warning names {name}: {exc.runtime_message}"
            )
        try:
            logged += warnings_of(adapter)
            handle.start()
            logged += warnings_of(adapter)
            assert handle.wait(timeout=WAIT) == 0, handle.stderr()
            effective = int(handle.stdout().split()[-1], 16)
        finally:
            container_factory.remove(handle)
    number = _NUMBERED.index(name) if name in _NUMBERED else -1
    if number >= 0 and effective >> number & 1:
        return  # granted after all: nothing to warn about
    assert any(name in w for w in logged), (
        f"{name} was not granted and no warning names it; the runtime's warnings: {logged}"
    )
