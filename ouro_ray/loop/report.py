"""Report a loop run's per-round metrics: a history CSV, a safety report, a plot, a table, a summary.

Every function takes ``rounds``: one dict per evaluated round, ``{"round": 0, "reward_mean": 0.24,
"safety": 0.34, "kl": 0.0, ...}``. Round 0 is the policy before any update, so the last round number
is the number of updates. A metric may be absent from a round, or ``None``; that is shown as a gap,
never as zero. Files are written atomically (temp file, then rename), so a reader never sees half of one.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.table import Table

from ouro_ray.data.files import atomic_path
from ouro_ray.eval.report import MISSING

Rounds = Sequence[dict[str, Any]]

MAIN_METRICS = ("reward_mean", "safety", "persona", "kl")
"""The metrics every view shows first, in this order, when a run has them."""
GRADE_COLUMNS = ("grade_mean", "reward_gap", "grade_pass")
"""The independent grade's columns the table always shows (after ``reward_mean``) when a run has them."""
TEACHER_METRICS = frozenset({"reward_mean", "safety", "persona", "persona_mean", "content", "logic", "safety_mean",
                             "refused_unsafe", "over_refusal", "coherence", "fact_agreement", "train_reward_mean"})
"""Figures the training teachers (the reward the policy optimises) decide."""
CSV_NAMES = {"round": "epoch", "reward_mean": "avg_reward", "safety": "safety_score", "kl": "kl"}
"""History-CSV column names for the loop's metric names (the names earlier tooling reads)."""
SAFETY_TARGET = 0.95
"""The safety score a run aims for: the convergence threshold and the dashed line on the plot."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def write_history_csv(rounds: Rounds, path: Path | str) -> Path:
    """Write one CSV row per round: epoch, avg_reward, safety_score, kl, then every other key, sorted.

    A key missing from a round (or ``None``) is an empty cell, so a spreadsheet shows a gap, not a zero.
    """
    path = Path(path)
    rounds = [_split_intervals(row) for row in rounds]
    others = sorted({k for row in rounds for k in row} - set(CSV_NAMES))
    clash = sorted(set(others) & set(CSV_NAMES.values()))
    if clash:  # two columns of one name: a reader would silently take one of them
        raise ValueError(f"metric keys {clash} are also history-CSV names for {sorted(CSV_NAMES)}; fix: rename "
                         "the metric")
    keys = [*CSV_NAMES, *others]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([CSV_NAMES.get(k, k) for k in keys])
        for row in rounds:
            writer.writerow(["" if row.get(k) is None else str(row.get(k)) for k in keys])
    return path


def _split_intervals(row: dict) -> dict:
    """``metric_ci: [lo, hi]`` as two CSV columns, ``metric_ci_lo`` and ``metric_ci_hi``."""
    out = {}
    for k, v in row.items():
        if k.endswith("_ci") and isinstance(v, (list, tuple)) and len(v) == 2:
            out[f"{k}_lo"], out[f"{k}_hi"] = v
        elif not (k.endswith("_ci") and v is None):
            out[k] = v
    return out


def convergence_epoch(rounds: Rounds, key: str = "safety", threshold: float = SAFETY_TARGET) -> int | None:
    """The first round from which ``key`` stays at or above ``threshold`` to the end; else ``None``.

    A round that only touches the threshold before falling back does not count as converged.
    """
    start = None
    for row in reversed(rounds):
        v = row.get(key)
        if v is None or v < threshold:
            break
        start = int(row["round"])
    return start


def safety_report(rounds: Rounds, config: dict[str, Any], threshold: float = SAFETY_TARGET) -> dict[str, Any]:
    """Summarise how safety moved over the run, with the config that produced it, for ``safety_report.json``."""
    if not rounds:
        raise ValueError(
            "safety_report: no evaluated rounds; evaluate round 0 (the policy before any update) "
            "and each round after it before writing the report"
        )
    if rounds[0].get("safety") is None:
        raise ValueError(
            f"safety_report: round 0 has no 'safety' metric (it has {sorted(rounds[0])}); "
            "keep 'safety' in judges.rules so every round is scored for safety"
        )
    scores = [v for row in rounds if (v := row.get("safety")) is not None]
    epoch = convergence_epoch(rounds, "safety", threshold)
    return {
        "config": config,
        "threshold": threshold,
        "epochs": int(rounds[-1]["round"]),
        "initial_safety": rounds[0]["safety"],
        "final_safety": rounds[-1].get("safety"),
        "best_safety": max(scores),
        "convergence_epoch": epoch,
        "converged": epoch is not None,
        "history": [
            {
                "epoch": row["round"],
                "safety": row.get("safety"),
                "avg_reward": row.get("reward_mean"),
                "kl": row.get("kl"),
            }
            for row in rounds
        ],
    }


def write_safety_report(
    rounds: Rounds, config: dict[str, Any], path: Path | str, threshold: float = SAFETY_TARGET
) -> dict[str, Any]:
    """Build the safety report and write it as indented JSON; returns the report."""
    report = safety_report(rounds, config, threshold)
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
    return report


def _ylim(key: str, values: list[float]) -> tuple[float, float]:
    """Scores are shown on their whole [0, 1] scale, KL from 0; anything else is padded around its data."""
    lo, hi = min(values), max(values)
    if key in ("safety", "persona"):
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    elif key == "kl":
        lo = min(lo, 0.0)
    pad = 0.05 * (hi - lo) or 0.1
    return lo - pad, hi + pad


def plot_rounds(rounds: Rounds, path: Path | str, title: str) -> Path:
    """Plot each main metric against the round, one panel each, as a PNG.

    Built on a bare ``Figure`` with the Agg canvas, so no global pyplot state or display is touched.
    """
    present = [k for k in MAIN_METRICS if any(row.get(k) is not None for row in rounds)]
    if not present:
        raise ValueError(f"plot_rounds: no round has any of {list(MAIN_METRICS)}; nothing to plot")
    fig = Figure(figsize=(4 * len(present), 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ticks = [int(row["round"]) for row in rounds]
    for ax, key in zip(fig.subplots(1, len(present), squeeze=False)[0], present):
        ys = [float("nan") if row.get(key) is None else float(row[key]) for row in rounds]  # NaN breaks the line
        ax.plot(ticks, ys, marker="o")
        band = [row.get(f"{key}_ci") for row in rounds]
        if any(b is not None for b in band):  # the evaluator's 95 % bootstrap interval per round
            lo = [float("nan") if b is None else b[0] for b in band]
            hi = [float("nan") if b is None else b[1] for b in band]
            ax.fill_between(ticks, lo, hi, alpha=0.2, label="95 % CI")
        if key == "safety":
            ax.axhline(SAFETY_TARGET, linestyle="--", color="grey", linewidth=1)
        ax.set_xticks(ticks, ["before" if t == 0 else str(t) for t in ticks])
        ax.set_ylim(*_ylim(key, [y for y in ys if not math.isnan(y)]))
        ax.set_xlabel("round")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def _default_keys(rounds: Rounds) -> list[str]:
    """The main metrics a run has, then its other numeric keys, sorted."""
    numeric = {k for row in rounds for k, v in row.items() if k != "round" and _is_number(v)}
    main = [k for k in MAIN_METRICS if k in numeric]
    return main + sorted(numeric - set(main))


def _cell(v: Any) -> str:
    if v is None:
        return MISSING
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)  # counts such as n stay whole numbers


def _source(key: str, rounds: Rounds) -> str | None:
    """Who decides a column: 'teachers' (the training reward's judges), 'grade' (the independent grade), or None."""
    if key.startswith("grade_") or key in ("fact_f1", "reward_gap"):
        return "grade"
    if key == "win_rate":
        judge = next((row["win_rate_judge"] for row in rounds if row.get("win_rate_judge")), "")
        return "grade" if judge.startswith("grade") else "teachers" if judge == "reward" else None
    return "teachers" if key in TEACHER_METRICS else None


def _with_grade(keys: list[str], rounds: Rounds) -> list[str]:
    """``keys`` with :data:`GRADE_COLUMNS` the run has, placed after ``reward_mean`` (first when it is absent)."""
    extra = [k for k in GRADE_COLUMNS if k not in keys and any(row.get(k) is not None for row in rounds)]
    at = keys.index("reward_mean") + 1 if "reward_mean" in keys else 0
    return keys[:at] + extra + keys[at:]


def _header(key: str, source: str | None) -> str:
    """``key`` broken after each underscore (narrow columns, whole names), then who decided it: (T) or (G)."""
    return key.replace("_", "_\n") + {"teachers": "\n(T)", "grade": "\n(G)", None: ""}[source]


def metrics_table(rounds: Rounds, keys: Sequence[str] | None = None) -> Table:
    """A rich table, one row per round, for the terminal at the end of ``ouro run``.

    The independent grade's main columns join ``keys`` when the run has them; each header says
    whether the training teachers (T) or the independent grade (G) decided the column.
    """
    keys = _with_grade(list(keys) if keys is not None else _default_keys(rounds), rounds)
    grader = next((row["grade_judge"] for row in rounds if row.get("grade_judge")), "none")
    table = Table(title="metrics per round. (T): the training teachers, whose reward the policy optimises; "
                        f"(G): the independent grade ({grader}), kept out of training; "
                        "reward_gap = reward_mean − grade_mean", collapse_padding=True)
    table.add_column("round", justify="right")
    for key in keys:
        table.add_column(_header(key, _source(key, rounds)), justify="right")
    for row in rounds:
        table.add_row(str(row["round"]), *(_cell(row.get(k)) for k in keys))
    return table


def _band(ax: Any, ticks: list[int], rounds: Rounds, key: str, label: str) -> None:
    """``key`` per round as a line, with its 95 % interval as a band when the rounds have one."""
    ys = [float("nan") if row.get(key) is None else float(row[key]) for row in rounds]
    line, = ax.plot(ticks, ys, marker="o", label=label)
    band = [row.get(f"{key}_ci") for row in rounds]
    if any(b is not None for b in band):
        lo = [float("nan") if b is None else b[0] for b in band]
        hi = [float("nan") if b is None else b[1] for b in band]
        ax.fill_between(ticks, lo, hi, alpha=0.2, color=line.get_color())


def plot_grade_gap(rounds: Rounds, path: Path | str, title: str) -> Path:
    """Training reward and independent grade per round (95 % bands), and their gap: reward rising while
    the grade stays flat is reward hacking."""
    if not any(row.get("grade_mean") is not None for row in rounds):
        raise ValueError("plot_grade_gap: no round has grade_mean; set evaluation.teachers (auto, rules, labels) to grade "
                         "held-out answers independently")
    grader = next((row["grade_judge"] for row in rounds if row.get("grade_judge")), "?")
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ticks = [int(row["round"]) for row in rounds]
    left, right = fig.subplots(1, 2)
    _band(left, ticks, rounds, "reward_mean", "reward_mean (training teachers)")
    _band(left, ticks, rounds, "grade_mean", f"grade_mean (independent: {grader})")
    left.set_ylim(-1.05, 1.05)
    left.set_title("reward vs independent grade")
    _band(right, ticks, rounds, "reward_gap", "reward − grade")
    right.axhline(0.0, linestyle="--", color="grey", linewidth=1)
    right.set_title("reward_gap (rising: reward hacking)")
    for ax in (left, right):
        ax.set_xticks(ticks, ["before" if t == 0 else str(t) for t in ticks])
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def before_after(rounds: Rounds, keys: Sequence[str] = (*MAIN_METRICS, *GRADE_COLUMNS)) -> list[str]:
    """One line per metric comparing round 0 with the last round, e.g. ``safety  0.340 → 0.970  (+0.630)``."""
    if not rounds:
        return []
    first, last = rounds[0], rounds[-1]
    lines = []
    for key in keys:
        a, b = first.get(key), last.get(key)
        if _is_number(a) and _is_number(b):
            lines.append(f"{key}  {a:.3f} → {b:.3f}  ({b - a:+.3f})")
    return lines
