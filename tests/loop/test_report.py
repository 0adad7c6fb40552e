"""Loop reporting: hand-worked values for the CSV, convergence, the safety report, plot, table, summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ouro_ray.loop.report import (
    before_after,
    convergence_epoch,
    metrics_table,
    plot_rounds,
    safety_report,
    write_history_csv,
    write_safety_report,
)

ROUNDS = [
    {"round": 0, "reward_mean": 0.237, "safety": 0.34, "persona": 0.5, "kl": 0.0, "n": 64, "content": -0.5},
    {"round": 1, "reward_mean": 0.41, "safety": 0.96, "persona": None, "kl": 0.012, "n": 64},
    {"round": 2, "reward_mean": 0.64, "safety": 0.97, "persona": 0.75, "kl": 0.031, "n": 64, "content": 0.25},
]


def _rounds(safety: list[float]) -> list[dict]:
    return [{"round": i, "safety": s} for i, s in enumerate(safety)]


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_history_csv_columns_order_and_empty_cells(tmp_path: Path) -> None:
    path = write_history_csv(ROUNDS, tmp_path / "out" / "history.csv")
    header, *rows = _read_csv(path)
    # The four named columns first, then the rest sorted: content < n < persona.
    assert header == ["epoch", "avg_reward", "safety_score", "kl", "content", "n", "persona"]
    assert rows[0] == ["0", "0.237", "0.34", "0.0", "-0.5", "64", "0.5"]
    # Round 1 has no content and persona=None: both empty cells, not zeros.
    assert rows[1] == ["1", "0.41", "0.96", "0.012", "", "64", ""]
    assert len(rows) == 3
    assert [p.name for p in path.parent.iterdir()] == ["history.csv"]  # no temp file left behind


def test_history_csv_keeps_full_float_precision(tmp_path: Path) -> None:
    path = write_history_csv([{"round": 0, "reward_mean": 1 / 3}], tmp_path / "h.csv")
    assert float(_read_csv(path)[1][1]) == 1 / 3


@pytest.mark.parametrize(
    ("safety", "expected"),
    [
        ([0.3, 0.96, 0.9, 0.97, 0.99], 3),  # round 1 touches 0.95 but round 2 falls back: converged at 3
        ([0.3, 0.5], None),  # never reaches 0.95
        ([0.96, 0.97], 0),  # safe before any update
        ([0.96, 0.97, 0.94], None),  # the last round is below: not converged
        ([0.3, 0.95], 1),  # the threshold itself counts (>=)
    ],
)
def test_convergence_epoch(safety: list[float], expected: int | None) -> None:
    assert convergence_epoch(_rounds(safety)) == expected


def test_convergence_epoch_stops_at_a_missing_value() -> None:
    rounds = _rounds([0.96, 0.97, 0.98])
    del rounds[1]["safety"]
    assert convergence_epoch(rounds) == 2
    assert convergence_epoch(rounds, key="persona") is None
    assert convergence_epoch(_rounds([0.5, 0.6]), threshold=0.55) == 1


def test_safety_report_fields() -> None:
    report = safety_report(ROUNDS, {"seed": 7})
    assert report["config"] == {"seed": 7}
    assert report["threshold"] == 0.95
    assert report["epochs"] == 2  # rounds 0..2: two updates
    assert report["initial_safety"] == 0.34
    assert report["final_safety"] == 0.97
    assert report["best_safety"] == 0.97
    assert report["convergence_epoch"] == 1  # 0.96 and 0.97 both >= 0.95
    assert report["converged"] is True
    assert report["history"][1] == {"epoch": 1, "safety": 0.96, "avg_reward": 0.41, "kl": 0.012}


def test_safety_report_not_converged_with_higher_threshold() -> None:
    report = safety_report(ROUNDS, {}, threshold=0.99)
    assert report["convergence_epoch"] is None
    assert report["converged"] is False


def test_write_safety_report_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "safety_report.json"
    report = write_safety_report(ROUNDS, {"seed": 7}, path)
    assert json.loads(path.read_text(encoding="utf-8")) == report
    assert path.read_text(encoding="utf-8").startswith("{\n  ")  # indented for humans


def test_safety_report_rejects_empty_and_missing_safety(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no evaluated rounds"):
        safety_report([], {})
    with pytest.raises(ValueError, match="round 0 has no 'safety'"):
        write_safety_report([{"round": 0, "reward_mean": 0.1}], {}, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_plot_rounds_writes_a_png(tmp_path: Path) -> None:
    path = plot_rounds(ROUNDS, tmp_path / "plot.png", title="tiny run")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_plot_rounds_with_one_metric_and_one_round(tmp_path: Path) -> None:
    path = plot_rounds([{"round": 0, "kl": 0.0}], tmp_path / "one.png", title="flat")
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_rounds([{"round": 0, "n": 3}], tmp_path / "none.png", title="empty")


def test_metrics_table_rows_and_columns() -> None:
    table = metrics_table(ROUNDS)
    assert table.row_count == 3
    # Main metrics in their order, then other numeric keys sorted; the training teachers' columns say so.
    # (headers break after underscores; (T) marks the training teachers' figures)
    assert [c.header for c in table.columns] == ["round", "reward_\nmean\n(T)", "safety\n(T)", "persona\n(T)", "kl",
                                                 "content\n(T)", "n"]
    persona = table.columns[3]
    assert list(persona.cells) == ["0.500", "–", "0.750"]
    assert list(table.columns[1].cells)[0] == "0.237"
    assert list(table.columns[6].cells) == ["64", "64", "64"]


def test_metrics_table_explicit_keys() -> None:
    table = metrics_table(ROUNDS, keys=["kl"])
    assert [c.header for c in table.columns] == ["round", "kl"]
    assert list(table.columns[1].cells) == ["0.000", "0.012", "0.031"]


GRADED = [
    {"round": 0, "reward_mean": 0.2, "grade_mean": 0.1, "reward_gap": 0.1, "grade_pass": 0.25, "grade_judge": "oracle",
     "reward_mean_ci": [0.1, 0.3], "grade_mean_ci": [0.0, 0.2], "reward_gap_ci": [0.0, 0.2], "kl": 0.0},
    {"round": 1, "reward_mean": 0.8, "grade_mean": 0.1, "reward_gap": 0.7, "grade_pass": 0.25, "grade_judge": "oracle",
     "reward_mean_ci": [0.7, 0.9], "grade_mean_ci": [0.0, 0.2], "reward_gap_ci": [0.6, 0.8], "kl": 0.1,
     "win_rate": 0.5, "win_rate_judge": "grade:oracle"},
]


def test_metrics_table_adds_the_independent_grade_and_says_who_decided() -> None:
    table = metrics_table(GRADED, keys=["reward_mean", "win_rate", "kl"])  # `ouro run` passes its own keys
    assert [c.header.replace("_\n", "_") for c in table.columns] == [
        "round", "reward_mean\n(T)", "grade_mean\n(G)", "reward_gap\n(G)", "grade_pass\n(G)", "win_rate\n(G)", "kl"]
    assert list(table.columns[3].cells) == ["0.100", "0.700"]  # reward up 0.6, grade flat: the gap shows it
    assert "independent grade (oracle)" in str(table.title)
    assert before_after(GRADED)[-3:] == ["grade_mean  0.100 → 0.100  (+0.000)", "reward_gap  0.100 → 0.700  (+0.600)",
                                         "grade_pass  0.250 → 0.250  (+0.000)"]


def test_grade_gap_plot(tmp_path: Path) -> None:
    from ouro_ray.loop.report import plot_grade_gap

    assert plot_grade_gap(GRADED, tmp_path / "gap.png", title="t").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="evaluation.teachers"):
        plot_grade_gap(ROUNDS, tmp_path / "none.png", title="no grade")


def test_before_after_lines() -> None:
    # 0.640 - 0.237 = +0.403; 0.97 - 0.34 = +0.630; persona 0.75 - 0.5 = +0.250; kl 0.031 - 0 = +0.031.
    assert before_after(ROUNDS) == [
        "reward_mean  0.237 → 0.640  (+0.403)",
        "safety  0.340 → 0.970  (+0.630)",
        "persona  0.500 → 0.750  (+0.250)",
        "kl  0.000 → 0.031  (+0.031)",
    ]


def test_before_after_skips_keys_missing_at_either_end() -> None:
    rounds = [{"round": 0, "safety": 0.9, "kl": 0.0}, {"round": 1, "safety": 0.8}]
    assert before_after(rounds) == ["safety  0.900 → 0.800  (-0.100)"]
    assert before_after([]) == []
