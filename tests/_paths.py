"""Paths the tests share (importable because pytest's pythonpath includes tests/)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "data" / "examples"


def learner_temp_dirs() -> set[str]:
    """The learner workers' temporary checkpoint copies in the temp directory (Ray's workers share the test's):
    each is removed once Ray Train has persisted it or the resumed worker has read it."""
    import tempfile

    root = Path(tempfile.gettempdir())
    return {p.name for pattern in ("ouro-ckpt-*", "ouro-resume-*") for p in root.glob(pattern)}
