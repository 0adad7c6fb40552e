"""The comparison's table: each arm's figures as a mean over seeds with a 95 % interval, beside the paper's.

Interval: Student's t over the seeds' values, ``mean ± t(0.975, n − 1) · sd / √n`` (none from one
seed). Written as ``compare.json`` (every seed's figures too), ``compare.csv`` (one row per arm and
figure), ``compare.md`` (our table, then the paper's) and ``compare.png`` (one panel per figure).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ouro_ray.compare.arms import ARMS, FIGURES
from ouro_ray.data.files import write_json_atomic, write_text_atomic

COLUMNS = {**{k: label for k, (label, _, _) in FIGURES.items()},
           "human_minutes_per_1k_pairs": "human minutes / 1k pairs"}
"""The table's figures, in order, with their labels."""

PAPER = {
    "sft": {"fact_f1": 72.1, "persona": 54.7, "reward_hacks": 23, "human_minutes_per_1k_pairs": None},
    "rlhf": {"fact_f1": 78.4, "persona": 68.9, "reward_hacks": 14, "human_minutes_per_1k_pairs": 105},
    "rlaif": {"fact_f1": 79.0, "persona": 66.2, "reward_hacks": 12, "human_minutes_per_1k_pairs": 37},
    "ouroboros": {"fact_f1": 86.3, "persona": 84.5, "reward_hacks": 7, "human_minutes_per_1k_pairs": 5},
}
"""The Ouroboros paper's table (no code, data or protocol behind it), for reading ours against."""


def interval(values: list[float]) -> dict:
    """``{"mean", "ci", "n", "values"}`` over the seeds' values (None values left out)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None], float)
    if x.size == 0:
        return {"mean": None, "ci": None, "n": 0, "values": values}
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "ci": None, "n": 1, "values": values}
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return {"mean": mean, "ci": [mean - half, mean + half], "n": int(x.size), "values": values}


def aggregate(per_seed: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    """``{arm: {figure: interval}}`` from ``{arm: [figures of seed 0, seed 1, …]}``."""
    return {arm: {key: interval([seed.get(key) for seed in seeds]) for key in COLUMNS}
            for arm, seeds in per_seed.items()}


def _cell(v: dict, digits: int = 1) -> str:
    if v["mean"] is None:
        return "–"
    if v["ci"] is None:
        return f"{v['mean']:.{digits}f}"
    return f"{v['mean']:.{digits}f} [{v['ci'][0]:.{digits}f}, {v['ci'][1]:.{digits}f}]"


def _times(meta: dict) -> str:
    t = meta.get("human_seconds")
    if not t:
        return "A person's label times: not recorded."
    return (f"A person's label times (human minutes come from them): {t['score']:.1f} s a score "
            f"({t['source']['score']}), {t['pair']:.1f} s a pair ({t['source']['pair']}); set "
            "human.times_from=RUN_DIR to use what people took in `ouro studio`.")


def markdown(table: dict[str, dict[str, dict]], meta: dict) -> str:
    head = "| arm | " + " | ".join(COLUMNS.values()) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    ours = [f"| {arm} | " + " | ".join(_cell(figs[k], 2 if k == "win_rate" else 1) for k in COLUMNS) + " |"
            for arm, figs in table.items()]
    paper_cols = ("fact_f1", "persona", "reward_hacks", "human_minutes_per_1k_pairs")
    paper = ["| arm | " + " | ".join(COLUMNS[k] for k in paper_cols) + " |", "|---" * (len(paper_cols) + 1) + "|"]
    paper += [f"| {arm} | " + " | ".join("–" if PAPER[arm][k] is None else str(PAPER[arm][k]) for k in paper_cols)
              + " |" for arm in table if arm in PAPER]
    return "\n".join([
        "# ouro compare", "",
        f"Base config: {meta['config'] or 'defaults'}; overrides: {' '.join(meta['overrides']) or 'none'}; "
        f"seeds {meta['seeds']}; {meta['rounds']} rounds each. Means over seeds with 95 % t-intervals. Every "
        "figure but the win rate is the independent grade of the arm's final policy on the held-out prompts "
        "(the tiny world's ground truth), never the arm's own teachers; the win rate is the evaluation "
        "judge's, both orders; stack hacks are the stress suite against the teachers that trained the final "
        "policy (SFT has none). SFT is round 0 (the initial policy).", "",
        *(f"- **{arm}**: {ARMS[arm].what}" for arm in table), "", _times(meta), "",
        head, rule, *ours, "",
        "## The paper's table (reported without code, data or protocol)", "", *paper, ""])


def write(out: Path, table: dict, per_seed: dict[str, list[dict]], meta: dict) -> list[Path]:
    """``compare.json``, ``compare.csv``, ``compare.md`` and ``compare.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "compare.json", {"meta": meta, "arms": table, "per_seed": per_seed, "paper": PAPER})
    with open(out / "compare.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["arm", "figure", "mean", "ci_low", "ci_high", "n", "values"])
        for arm, figs in table.items():
            for key, v in figs.items():
                lo, hi = v["ci"] if v["ci"] else (None, None)
                w.writerow([arm, key, v["mean"], lo, hi, v["n"], " ".join("" if x is None else f"{x:.6g}"
                                                                        for x in v["values"])])
    write_text_atomic(out / "compare.md", markdown(table, meta))
    plot(table, out / "compare.png")
    return [out / f"compare.{ext}" for ext in ("json", "csv", "md", "png")]


def plot(table: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = list(COLUMNS)
    fig = Figure(figsize=(3.2 * len(keys), 3.4))
    FigureCanvasAgg(fig)
    arms = list(table)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        means = [table[a][key]["mean"] or 0.0 for a in arms]
        err = [[m - (table[a][key]["ci"] or [m, m])[0] for a, m in zip(arms, means)],
               [(table[a][key]["ci"] or [m, m])[1] - m for a, m in zip(arms, means)]]
        ax.bar(arms, means, yerr=err, capsize=3, color="#4c72b0")
        ax.set_title(COLUMNS[key], fontsize=9)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
