"""Write the evaluator's outputs (``ouro eval --out DIR``): report.json, report.md, results.csv and figures.

``report`` is the plain dict the evaluator builds (models, baseline, sample sizes, per-model metrics with
95 % bootstrap intervals, optionally ``pairwise`` ratings and ``stress`` hack rates); ``rows`` are the
per-prompt results behind it, ``{"model", "prompt_id", "metric", "value", "n"}``. Every figure carries
its sample size and a 95 % interval: bootstrap intervals from the report, and for stress hack rates
(which come as counts) a Wilson score interval computed here. A figure whose section is absent is
skipped, and report.md says so. Files are written atomically, as in :mod:`ouro_ray.loop.report`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ouro_ray.data.files import atomic_path

REQUIRED = {
    "models": '["policy", "baseline"]', "baseline": '"baseline"', "paths": '{"policy": "/path"}',
    "n_prompts": "64", "n_candidates": "2", "seed": "0",
    "metrics": '{"policy": {"safety": {"value": 0.9, "ci": [0.8, 0.95], "n": 128}}}',
}
"""Top-level keys every report has, with an example value for the error message."""
SECTIONS = {
    "pairwise": ("judge", "comparisons", "prior", "elo", "win_rate", "position_bias"),
    "stress": ("per_attack", "overall"),
}
"""Optional sections, and the keys each must have when present."""
CSV_COLUMNS = ("model", "prompt_id", "metric", "value", "n")
Z_95 = 1.959964  # standard-normal quantile for a two-sided 95 % interval

MISSING = "–"
"""How every report (`ouro eval`, `ouro run`) shows a figure that was not measured."""


def validate(report: dict[str, Any]) -> None:
    """Raise ValueError naming the first missing key, so the producer is fixed rather than the reader."""
    for key, example in REQUIRED.items():
        if key not in report:
            raise ValueError(f"report is missing required key {key!r} (has {sorted(report)}); fix: the evaluator "
                             f"building the report must set report[{key!r}], e.g. {example}")
    if report["baseline"] not in report["models"]:
        raise ValueError(f"report['baseline']={report['baseline']!r} is not in report['models']="
                         f"{report['models']}; fix: list the baseline among the evaluated models")
    for section, keys in SECTIONS.items():
        for key in keys:
            if section in report and key not in report[section]:
                raise ValueError(f"report is missing required key '{section}.{key}' (has {sorted(report[section])});"
                                 f" fix: set report[{section!r}][{key!r}], or leave out {section!r} altogether")


# --- numbers ------------------------------------------------------------------------------------------

def wilson(k: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """95 % Wilson score interval for k successes in n trials (Wilson 1927); None when n == 0."""
    if n == 0:
        return None
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _per_100_ci(k: int, n: int) -> list[float] | None:
    """The Wilson interval of k hacks in n pairs, per 100 pairs."""
    ci = wilson(k, n)
    return None if ci is None else [100 * ci[0], 100 * ci[1]]


def _ci(ci: list[float] | None, fmt: str) -> str:
    return MISSING if ci is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _metric_cell(m: dict[str, Any] | None) -> str:
    """``value [lo, hi] (n=…)``; ``–`` when the model has no value for the metric."""
    if m is None or m.get("value") is None:
        return MISSING
    if isinstance(m["value"], int) and m.get("ci") is None:  # a count (grade_n, grade_unknown)
        return f"{m['value']} of {m['n']}"
    ci = "" if m.get("ci") is None else f" {_ci(m['ci'], '.3f')}"
    return f"{m['value']:.3f}{ci} (n={m['n']})"


def metric_names(report: dict[str, Any]) -> list[str]:
    """Every metric any model has, in first-appearance order over ``report['models']``."""
    names: dict[str, None] = {}
    for model in report["models"]:
        names.update(dict.fromkeys(report["metrics"].get(model, {})))
    return list(names)


def figures(report: dict[str, Any]) -> dict[str, str | None]:
    """Each figure's file name -> None when it is drawn, else why it is skipped (one place, so the files
    written and what report.md says agree)."""
    pairwise = report.get("pairwise")
    return {
        "elo.png": None if pairwise and pairwise["elo"] else "no pairwise comparisons in the report",
        "metrics.png": None if metric_names(report) else "no metrics in the report",
        "stress.png": None if report.get("stress") else "no stress section in the report",
    }


# --- report.md ----------------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _header(report: dict[str, Any]) -> list[str]:
    lines = ["# Evaluation report", "",
             f"Models: {', '.join(f'`{m}`' for m in report['models'])}; baseline `{report['baseline']}`.", "",
             f"Sample: {report['n_prompts']} prompts × {report['n_candidates']} candidates per prompt per model "
             f"(seed {report['seed']}).", ""]
    lines += [f"- `{m}`: `{report['paths'].get(m, MISSING)}`" for m in report["models"]] + [""]
    if report.get("prompt_set"):
        lines += [f"Prompt set: {report['prompt_set']}.", ""]
    grader = report.get("grade_judge")
    if grader is not None:
        lines += ["Independent grade: none (evaluation.teachers = none): every figure comes from the training "
                  "teachers." if grader == "none" else
                  f"Independent grade: {grader} (evaluation.teachers; kept out of the reward): the `grade_*`, "
                  "`fact_f1` and `reward_gap` columns. The other figures come from the training teachers.", ""]
    pw = report.get("pairwise")
    lines += ["Pairwise judge: none (a single model, or no pairwise judging).", ""] if pw is None else [
        f"Pairwise judge: {pw['judge']} ({pw['comparisons']} comparisons, prior {pw['prior']} virtual ties "
        "per pair in the Bradley-Terry fit).", ""]
    return lines


def _pairwise(report: dict[str, Any]) -> list[str]:
    pw, base = report["pairwise"], report["baseline"]
    elo = [[f"`{m}`" + (" (baseline)" if m == base else ""), f"{e['rating']:.1f}", _ci(e["ci"], ".1f")]
           for m in report["models"] if (e := pw["elo"].get(m))]
    wins = [[f"`{m}`", str(w["wins"]), str(w["losses"]), str(w["ties"]), f"{w['value']:.3f}",
             _ci(w["ci"], ".3f"), str(w["n"])] for m in report["models"] if (w := pw["win_rate"].get(m))]
    pb = pw["position_bias"]
    bias = (f"no decisive verdicts (n=0), {pb['ties']} ties" if pb["first_position_rate"] is None else
            f"the candidate shown first won {100 * pb['first_position_rate']:.1f} % of n={pb['n']} decisive "
            f"verdicts; bias {pb['position_bias']:.3f} (0 none, 1 always the same slot); {pb['ties']} ties")
    pc = pw.get("position_consistency")
    consistency = [] if pc is None else [
        f"Position consistency: {pc['value']:.3f} of n={pc['n']} comparisons gave the same verdict in both orders "
        f"(each asked both ways and swap-averaged); {pw.get('excluded', 0)} comparisons excluded (ungraded).", ""]
    return (["## Elo ratings (Bradley-Terry, 95 % bootstrap CI)", "", f"n={pw['comparisons']} comparisons.", ""]
            + _table(["model", "rating", "95 % CI"], elo)
            + [f"## Win rate vs `{base}` (ties count ½)", ""]
            + _table(["model", "wins", "losses", "ties", "win rate", "95 % CI", "n"], wins)
            + [f"Position bias: {bias}.", ""] + consistency)


def _metrics(report: dict[str, Any]) -> list[str]:
    names = metric_names(report)
    rows = [[f"`{m}`", *(_metric_cell(report["metrics"].get(m, {}).get(k)) for k in names)] for m in report["models"]]
    return ["## Metrics (value [95 % bootstrap CI] (n))", ""] + _table(["model", *names], rows)


def _stress_row(kind: str, s: dict[str, Any]) -> list[str]:
    return [kind, str(s["n"]), str(s["hacks"]), f"{s['per_100']:.1f}", _ci(_per_100_ci(s["hacks"], s["n"]), ".1f")]


def _stress(report: dict[str, Any]) -> list[str]:
    st = report["stress"]
    rows = [_stress_row(k, s) for k, s in st["per_attack"].items()] + [_stress_row("**overall**", st["overall"])]
    return (["## Stress: reward hacks per attack", "",
             "A hack: the adversarial candidate gets a strictly higher reward than the plain correct one.", ""]
            + _table(["attack", "n", "hacks", "per 100", "95 % CI (Wilson)"], rows))


def markdown(report: dict[str, Any]) -> str:
    """The human summary, report.md."""
    validate(report)
    lines = _header(report) + (_pairwise(report) if "pairwise" in report else [])
    lines += _metrics(report) + (_stress(report) if "stress" in report else [])
    if report.get("definitions"):
        lines += ["## Definitions", "", *(f"- **{k}**: {v}" for k, v in report["definitions"].items()), ""]
    lines += ["## Figures", "", *(f"- `{name}`" + (f": skipped, {why}" if why else "")
                                  for name, why in figures(report).items())]
    return "\n".join(lines) + "\n"


# --- files --------------------------------------------------------------------------------------------

def write_results_csv(rows: Iterable[dict[str, Any]], path: Path | str) -> Path:
    """One CSV row per result row: model, prompt_id, metric, value, n; ``None`` is an empty cell."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for i, row in enumerate(rows):
            missing = [c for c in CSV_COLUMNS if c not in row]
            if missing:
                raise ValueError(f"result row {i} lacks {missing} (has {sorted(row)}); fix: every result row "
                                 f"needs {list(CSV_COLUMNS)}, with value None when there is none")
            writer.writerow([row[c] for c in CSV_COLUMNS])  # csv writes None as an empty cell
    return path


def _write_json(report: dict[str, Any], path: Path) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        try:
            json.dump(report, fh, ensure_ascii=False, indent=2, allow_nan=False)
        except ValueError as err:  # strict JSON: NaN would break readers other than Python's
            raise ValueError(f"report.json: {err}; fix: store a missing number as None, not NaN") from None
        fh.write("\n")
    return path


def _save(fig: Figure, path: Path | str) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def _label(ax: Any, x: float, y: float, text: str) -> None:
    """Put ``text`` just above (x, y): the top of a bar or of its whisker."""
    ax.annotate(text, (x, y), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=8)


def _yerr(values: list[float], cis: list[list[float] | None]) -> list[list[float]]:
    """Asymmetric error bars (2, N); zero where there is no interval (a percentile CI may exclude the value)."""
    lo = [0.0 if c is None else max(0.0, v - c[0]) for v, c in zip(values, cis)]
    hi = [0.0 if c is None else max(0.0, c[1] - v) for v, c in zip(values, cis)]
    return [lo, hi]


def plot_elo(report: dict[str, Any], path: Path | str) -> Path:
    """One point per model with its 95 % bootstrap CI; the baseline a red square with a dashed line."""
    pw, base = report["pairwise"], report["baseline"]
    models = [m for m in report["models"] if m in pw["elo"]]
    fig = Figure(figsize=(max(4.0, 1.3 * len(models) + 1.5), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for x, m in enumerate(models):
        e = pw["elo"][m]
        style = dict(fmt="s", color="tab:red", label="baseline") if m == base else dict(fmt="o", color="tab:blue")
        ax.errorbar([x], [e["rating"]], yerr=_yerr([e["rating"]], [e["ci"]]), capsize=5, **style)
    if base in pw["elo"]:
        ax.axhline(pw["elo"][base]["rating"], linestyle="--", color="tab:red", linewidth=1, alpha=0.5)
        ax.legend(loc="best")
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("Elo rating")
    ax.grid(alpha=0.3)
    ax.set_title(f"Bradley-Terry Elo, 95 % bootstrap CI\nn={pw['comparisons']} comparisons, judge {pw['judge']}")
    return _save(fig, path)


def _is_count(report: dict[str, Any], metric: str) -> bool:
    cells = [report["metrics"].get(m, {}).get(metric) for m in report["models"]]
    return all(c is not None and isinstance(c.get("value"), int) and c.get("ci") is None for c in cells)


def _metric_panel(ax: Any, report: dict[str, Any], metric: str) -> None:
    cells = [report["metrics"].get(m, {}).get(metric) or {} for m in report["models"]]
    values = [c.get("value") or 0.0 for c in cells]
    cis = [c.get("ci") if c.get("value") is not None else None for c in cells]
    colors = ["tab:gray" if m == report["baseline"] else "tab:blue" for m in report["models"]]
    xs = range(len(values))
    ax.bar(xs, values, yerr=_yerr(values, cis), capsize=4, color=colors)
    for x, c, ci in zip(xs, cells, cis):
        label = "no value" if c.get("value") is None else f"n={c.get('n')}" + ("" if ci else ", no CI")
        _label(ax, x, ci[1] if ci else values[x], label)
    ax.set_xticks(xs, report["models"], rotation=20)
    ax.set_title(metric)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)


def plot_metrics(report: dict[str, Any], path: Path | str) -> Path:
    """One panel per metric, one bar per model with its 95 % bootstrap CI and n above it (baseline grey);
    counts (``grade_n``, ``grade_unknown``) are in the tables, not drawn."""
    names = [k for k in metric_names(report) if not _is_count(report, k)]
    fig = Figure(figsize=(max(3.5, 1.1 * len(report["models"]) + 1) * len(names), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, metric in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
        _metric_panel(ax, report, metric)
    fig.suptitle(f"metrics per model, 95 % bootstrap CI ({report['n_prompts']} prompts × "
                 f"{report['n_candidates']} candidates; n per bar)")
    return _save(fig, path)


def plot_stress(report: dict[str, Any], path: Path | str) -> Path:
    """Hacks per 100 pairs per attack kind with a 95 % Wilson interval and n on each bar; overall in the title."""
    per, overall = report["stress"]["per_attack"], report["stress"]["overall"]
    kinds = list(per)
    values = [per[k]["per_100"] for k in kinds]
    cis = [_per_100_ci(per[k]["hacks"], per[k]["n"]) for k in kinds]
    fig = Figure(figsize=(max(4.0, 1.2 * len(kinds) + 1.5), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.bar(range(len(kinds)), values, yerr=_yerr(values, cis), capsize=4, color="tab:orange")
    for x, k in enumerate(kinds):
        _label(ax, x, cis[x][1] if cis[x] else values[x], f"n={per[k]['n']}")
    ax.set_xticks(range(len(kinds)), kinds, rotation=20)
    ax.set_ylim(0, 105)
    ax.set_ylabel("hacks per 100 pairs")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"reward hacks per attack, 95 % Wilson CI\noverall {overall['per_100']:.1f} per 100 "
                 f"{_ci(_per_100_ci(overall['hacks'], overall['n']), '.1f')} (n={overall['n']})")
    return _save(fig, path)


PLOTS = {"elo.png": plot_elo, "metrics.png": plot_metrics, "stress.png": plot_stress}


def write_report(report: dict[str, Any], rows: Iterable[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md, results.csv and every figure whose section is present into ``out_dir``;
    return the written files by name."""
    validate(report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"report.json": _write_json(report, out / "report.json"),
               "results.csv": write_results_csv(rows, out / "results.csv")}
    for name, why in figures(report).items():
        if why is None:
            written[name] = PLOTS[name](report, out / name)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown(report), encoding="utf-8")
    written["report.md"] = out / "report.md"
    return written
