"""Hypothesis profiles of the conformance suites: ``ci`` (default), ``thorough`` and
``triage``.

Choose with Hypothesis's own option, ``--hypothesis-profile=thorough``. Every example
makes real containers, so there is no deadline, and ``ci`` keeps the example counts
small enough for the runtime suite to finish in about a minute on two cores.
``triage`` is ``ci`` without shrinking: a failing test stops at its first failing
example, which is the quickest way to learn which requirements a runtime breaks (the
example in the report is then not the smallest one).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

_COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)

settings.register_profile("ci", _COMMON, max_examples=5, stateful_step_count=12)
settings.register_profile("thorough", _COMMON, max_examples=60, stateful_step_count=40)
settings.register_profile(
    "triage",
    settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile("ci")
