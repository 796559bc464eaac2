"""The cluster side of the plugin, through pytester: ``--cluster`` parsing and its
errors, ``throwaway_cluster`` making and removing a real reference cluster, the leak
check catching a cluster left up, and ``--cluster=kubeconfig:PATH`` against a reference
cluster the test starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_containers.cluster import DEFAULT_STATE_DIR
from pytest_containers.clusters import ClusterChoice, default_kubeconfig

pytestmark = pytest.mark.needs_root
pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("reference", "reference"),
        ("kubeconfig:/x/config", "kubeconfig"),
        ("kubeconfig", "kubeconfig"),
    ],
)
def test_choice_parses(value: str, kind: str) -> None:
    assert ClusterChoice.parse(value).kind == kind


def test_kubeconfig_alone_is_the_environment_or_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"/a/one{os.pathsep}/b/two")
    assert default_kubeconfig() == Path("/a/one")
    monkeypatch.delenv("KUBECONFIG")
    assert default_kubeconfig() == Path("~/.kube/config").expanduser()


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (
            "--cluster=kind",
            "*--cluster=kind: unknown cluster 'kind'; the forms are reference, kubeconfig or "
            "kubeconfig:PATH*",
        ),
        (
            "--cluster=kubeconfig:/nonexistent/kc",
            "*--cluster=kubeconfig:/nonexistent/kc: kubeconfig /nonexistent/kc does not exist*",
        ),
        ("--cluster=kubeconfig:", "*kubeconfig: needs a path*"),
    ],
)
def test_bad_cluster_values_are_one_line_usage_errors(
    pytester: pytest.Pytester, arg: str, message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess(arg, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_throwaway_cluster_works_and_is_removed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pathlib, subprocess

        def test_cluster(throwaway_cluster):
            c = throwaway_cluster(nodes=0, hollow_nodes=2)
            assert c.node_names() == ["hollow-node-1", "hollow-node-2"]
            assert "pc-" in c.name and c.kubeconfig.is_file()
            env = {"KUBECONFIG": str(c.kubeconfig), "PATH": "/usr/bin:/usr/local/bin:/bin"}
            out = subprocess.run(["kubectl", "get", "nodes", "-o", "name"],
                                 capture_output=True, text=True, env=env)
            assert out.stdout.split() == ["node/hollow-node-1", "node/hollow-node-2"], out.stderr
            c.core().create_namespaced_pod("default", {"metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
            pathlib.Path("made").write_text(str(c.state_dir / c.name))
            assert "restart_api_server" in c.faults
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    made = Path(pytester.path / "made").read_text()
    assert made.startswith(str(DEFAULT_STATE_DIR)) and not Path(made).exists()
    assert "leaked" not in result.stdout.str()


def test_a_cluster_left_up_is_a_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pathlib

        def test_leave_one(cluster_factory):
            c = cluster_factory.throwaway(nodes=0, hollow_nodes=0)
            pathlib.Path("made").write_text(str(c.state_dir / c.name))
            cluster_factory._live.clear()  # forget it: as if its undo never ran
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*pytest-containers: leaked cluster pc-*(removed now)*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert not Path(Path(pytester.path / "made").read_text()).exists()


def test_kubeconfig_mode_against_a_running_cluster(
    pytester: pytest.Pytester, throwaway_cluster: object
) -> None:
    made = throwaway_cluster(nodes=0, hollow_nodes=1)  # type: ignore[operator]
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("CL-API-CRUD-1")
        def test_uses_it(cluster, cluster_namespace):
            assert cluster.kind == "kubeconfig" and cluster.faults == frozenset()
            assert cluster.node_names() == ["hollow-node-1"]
            got = cluster.core().read_namespace(cluster_namespace)
            assert got.metadata.name == cluster_namespace

        def test_fault_skipped(cluster):
            from pytest_containers.cluster import requires_fault
            requires_fault(cluster, "partition_node")
        """
    )
    result = pytester.runpytest_subprocess(
        f"--cluster=kubeconfig:{made.kubeconfig}",
        "-p",
        "no:cacheprovider",
        "-rs",
        f"--conformance-json={pytester.path / 'r.json'}",
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*the kubeconfig cluster cannot inject partition_node*"])
    import json

    env = json.loads((pytester.path / "r.json").read_text())
    assert "kubeconfig" in json.dumps(env)
    assert made.core().list_namespace().items  # the cluster is still up: not ours to remove


def test_the_session_cluster_has_three_node_agents_to_fault(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_containers.clusters import NODE_FAULTS

        def test_shape(cluster):
            assert cluster.kind == "reference"
            assert cluster.fault_nodes() == [f"reference-node-{i}" for i in (1, 2, 3)]
            assert set(NODE_FAULTS) | {"restart_api_server"} <= cluster.faults
            node = cluster.fault_nodes()[0]
            cluster.partition_node(node)
            cluster.heal_node(node)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "leaked" not in result.stdout.str()
