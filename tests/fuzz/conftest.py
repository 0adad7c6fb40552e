"""Load the fuzzers' Hypothesis profile before any test module is collected."""

import fuzz._profile  # noqa: F401
