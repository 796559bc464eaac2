"""The conformance suites of pytest-containers.

``conformance/runtime/`` checks an OCI runtime (``--runtime=...``) and
``conformance/cluster/`` a Kubernetes-API cluster (``--cluster=...``), requirement by
requirement (``conformance/requirements/*.toml``). Run them from a checkout with
``pytest --runtime=NAME`` or, installed, ``pytest --pyargs conformance --runtime=NAME``.
"""
