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

from collections.abc import Iterator

import pytest
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

# How long Hypothesis may shrink one failure, per profile. Every shrink step makes real
# containers, so its built-in five minutes, spent on each failing property of a runtime
# that breaks a dozen, would make a ci run of a real runtime last an hour; thorough keeps
# the five minutes. (Hypothesis has no setting for it: this is its engine's constant.)
SHRINK_SECONDS = {"ci": 20, "triage": 0, "thorough": 300}


@pytest.fixture(scope="session", autouse=True)
def _bounded_shrinking() -> Iterator[None]:
    from hypothesis.internal.conjecture import engine

    default = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if default is None:  # a Hypothesis without the constant: nothing to bound
        yield
        return
    engine.MAX_SHRINKING_SECONDS = SHRINK_SECONDS.get(settings.get_current_profile_name(), default)
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = default
