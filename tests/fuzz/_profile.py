"""Hypothesis profiles for the fuzzers (loaded by ``conftest.py``): reproducible by default, wider on request.

``ci`` (the default): a fixed seed derived from each test (``derandomize``), no example database, so a
failure reproduces on every machine and run; the fuzzers' ``max_examples`` keep ``tests/fuzz`` at about
10 s of CPU (under a minute even on two cores a benchmark keeps busy). ``explore``: fresh random examples and ten times as
many, for hunting bugs by hand: ``OURO_FUZZ=explore pytest tests/fuzz``. A failure prints the shrunk
example; keep it as a regression test (``test_*_regressions.py``) once fixed.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=_QUIET)
settings.register_profile("explore", derandomize=False, database=None, deadline=None, print_blob=True,
                          suppress_health_check=_QUIET)
PROFILE = os.environ.get("OURO_FUZZ", "ci")
if PROFILE not in ("ci", "explore"):
    raise ValueError(f"OURO_FUZZ={PROFILE!r}: unknown fuzzing profile; fix: unset it, or use ci or explore")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """A fuzzer's example budget under the active profile (``explore`` runs ten times as many)."""
    return n * 10 if PROFILE == "explore" else n
