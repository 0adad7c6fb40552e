"""The evaluator's output writer: every file, its contents, skipped sections, and loud validation."""

from __future__ import annotations

import copy
import csv
import json

import pytest

from ouro_ray.eval.report import markdown, wilson, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = ["policy", "policy_b", "baseline"]


def _report() -> dict:
    return {
        "models": MODELS,
        "baseline": "baseline",
        "paths": {m: f"/ckpt/{m}" for m in MODELS},
        "n_prompts": 64, "n_candidates": 2, "seed": 0,
        "metrics": {
            "policy": {"safety": {"value": 0.812, "ci": [0.75, 0.86], "n": 128},
                       "persona": {"value": 0.5, "ci": None, "n": 128}},
            "policy_b": {"safety": {"value": 0.7, "ci": [0.61, 0.78], "n": 128},
                         "persona": {"value": None, "ci": None, "n": 0}},
            "baseline": {"safety": {"value": 0.64, "ci": [0.55, 0.72], "n": 128}},
        },
        "definitions": {"safety": "share of candidates the safety rule passes", "persona": "persona rubric score"},
        "pairwise": {
            "judge": "reward", "comparisons": 384, "prior": 0.5,
            "elo": {"policy": {"rating": 1043.2, "ci": [1021.5, 1066.9]},
                    "policy_b": {"rating": 998.7, "ci": [975.1, 1020.4]},
                    "baseline": {"rating": 958.1, "ci": [935.0, 980.2]}},
            "win_rate": {"policy": {"value": 0.625, "ci": [0.55, 0.70], "n": 128, "wins": 76, "losses": 44, "ties": 8},
                         "policy_b": {"value": 0.55, "ci": [0.47, 0.63], "n": 128, "wins": 66, "losses": 54,
                                      "ties": 8}},
            "position_bias": {"n": 360, "first_position_rate": 0.5472, "position_bias": 0.0944, "ties": 24},
        },
        "stress": {
            "per_attack": {"injection": {"n": 10, "hacks": 0, "ties": 2, "per_100": 0.0, "mean_margin": -0.3},
                           "padding": {"n": 20, "hacks": 5, "ties": 0, "per_100": 25.0, "mean_margin": -0.1}},
            "overall": {"n": 30, "hacks": 5, "ties": 2, "per_100": 16.7},
        },
    }


def _rows() -> list[dict]:
    return [{"model": m, "prompt_id": f"p{i}", "metric": "safety", "value": None if i == 0 else 0.5 * i, "n": 2}
            for m in MODELS for i in range(3)]


def test_wilson_hand_worked() -> None:
    # 0 of 10, z = 1.96: centre = (0 + 3.8415/20) / (1 + 3.8415/10) = 0.19207 / 1.38415 = 0.1388,
    # half = 1.96 * sqrt(3.8415/400) / 1.38415 = 0.1388, so [0, 0.2775]
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0) is None


def test_full_report_writes_every_file(tmp_path) -> None:
    report = _report()
    written = write_report(report, _rows(), tmp_path / "out")
    names = {"report.json", "report.md", "results.csv", "elo.png", "metrics.png", "stress.png"}
    assert set(written) == names
    assert {p.name for p in (tmp_path / "out").iterdir()} == names  # no temp files left behind
    for name in ("elo.png", "metrics.png", "stress.png"):
        assert written[name].read_bytes()[:8] == PNG_MAGIC
    assert json.loads(written["report.json"].read_text(encoding="utf-8")) == report
    with open(written["results.csv"], newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["model", "prompt_id", "metric", "value", "n"]
    assert len(table) == 1 + len(_rows())
    assert table[1] == ["policy", "p0", "safety", "", "2"]  # None is an empty cell
    assert table[2] == ["policy", "p1", "safety", "0.5", "2"]


def test_markdown_carries_numbers_intervals_and_sizes() -> None:
    md = markdown(_report())
    assert "Pairwise judge: reward (384 comparisons" in md
    assert "| `policy` | 1043.2 | [1021.5, 1066.9] |" in md
    assert "| `baseline` (baseline) | 958.1 | [935.0, 980.2] |" in md
    assert "| `policy` | 76 | 44 | 8 | 0.625 | [0.550, 0.700] | 128 |" in md
    assert "won 54.7 % of n=360 decisive verdicts; bias 0.094" in md
    assert "| `policy` | 0.812 [0.750, 0.860] (n=128) | 0.500 (n=128) |" in md
    assert "| `policy_b` | 0.700 [0.610, 0.780] (n=128) | – |" in md
    assert "| `baseline` | 0.640 [0.550, 0.720] (n=128) | – |" in md  # a metric the model lacks
    assert "| injection | 10 | 0 | 0.0 | [0.0, 27.8] |" in md  # Wilson bound, worked in test_wilson_hand_worked
    assert "**overall**" in md
    assert "- **safety**: share of candidates the safety rule passes" in md
    assert "skipped" not in md


def test_without_pairwise_and_stress_only_metrics_plot(tmp_path) -> None:
    report = _report()
    del report["pairwise"], report["stress"], report["definitions"]
    written = write_report(report, _rows(), tmp_path)
    assert {n for n in written if n.endswith(".png")} == {"metrics.png"}
    assert not (tmp_path / "elo.png").exists() and not (tmp_path / "stress.png").exists()
    md = written["report.md"].read_text(encoding="utf-8")
    assert "`elo.png`: skipped, no pairwise comparisons in the report" in md
    assert "`stress.png`: skipped, no stress section in the report" in md
    assert "Pairwise judge: none" in md
    assert "## Elo" not in md and "## Stress" not in md and "## Definitions" not in md


@pytest.mark.parametrize("section, key, named", [(None, "baseline", "'baseline'"), (None, "metrics", "'metrics'"),
                                                 ("pairwise", "elo", "'pairwise.elo'"),
                                                 ("stress", "overall", "'stress.overall'")])
def test_missing_key_is_named(tmp_path, section, key, named) -> None:
    report = copy.deepcopy(_report())
    del (report if section is None else report[section])[key]
    with pytest.raises(ValueError, match=f"missing required key {named}.*fix:"):
        write_report(report, _rows(), tmp_path)
    assert not any(tmp_path.iterdir())  # validated before anything is written


def test_bad_baseline_and_bad_rows_are_loud(tmp_path) -> None:
    report = _report()
    report["baseline"] = "nobody"
    with pytest.raises(ValueError, match="'nobody' is not in report\\['models'\\]"):
        markdown(report)
    with pytest.raises(ValueError, match="result row 0 lacks \\['n'\\]"):
        write_report(_report(), [{"model": "policy", "prompt_id": "p", "metric": "safety", "value": 1.0}], tmp_path)


def test_nan_is_refused_with_a_fix(tmp_path) -> None:
    report = _report()
    report["metrics"]["policy"]["safety"]["value"] = float("nan")
    with pytest.raises(ValueError, match="None, not NaN"):
        write_report(report, _rows(), tmp_path)
    assert not (tmp_path / "report.json").exists()
