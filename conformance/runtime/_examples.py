"""How many examples a property of the runtime suite draws (not a test module).

A settings object takes what it does not set from the profile loaded when it is made,
so this module is imported by test modules only, after Hypothesis has loaded the
profile of ``--hypothesis-profile``; the fixtures of ``conftest.py``, loaded before
that, must not import it.
"""

from __future__ import annotations

from hypothesis import Phase, settings

# Every example makes a container: shrinking a failure would cost tens of seconds of
# containers for little gain, so failures are reported as generated.
FIRST_FAILURE = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])


def share(fraction: float) -> settings:
    """A share of the profile's examples (``ci`` 5, ``thorough`` 60), at least one."""
    return settings(FIRST_FAILURE, max_examples=max(1, round(settings().max_examples * fraction)))


# Where the values matter less than the kind of value: 3 examples in ci, 36 in thorough.
FEWER = share(0.6)
