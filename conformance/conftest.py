"""Hypothesis profiles of the conformance suites: ``ci`` (default) and ``thorough``.

Choose with Hypothesis's own option, ``--hypothesis-profile=thorough``. Every example
makes real containers, so there is no deadline, and ``ci`` keeps the example counts
small enough for the runtime suite to finish in about a minute on two cores.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)

settings.register_profile("ci", _COMMON, max_examples=5, stateful_step_count=12)
settings.register_profile("thorough", _COMMON, max_examples=60, stateful_step_count=40)
settings.load_profile("ci")
