"""`ouro judge-eval`'s report as Markdown and as the lines it prints."""

from __future__ import annotations

from pathlib import Path


def _fmt(fig: dict | None) -> str:
    """``0.912 [0.88, 0.94] (n=300)``, or ``–`` when the figure does not apply."""
    if not fig or fig.get("value") is None:
        return "–"
    lo, hi = fig["ci"]
    return f"{fig['value']:.3f} [{lo:.2f}, {hi:.2f}] (n={fig['n']})"


def teacher_rows(report: dict) -> list[str]:
    head = ("| teacher | items | pairwise accuracy (both orders) | position consistency | one order | "
            "by its own score | pointwise agreement (helpful / honest / persona) | stress hacks per 100 |")
    rows = [head, "|" + "---|" * 8]
    for name, t in report["teachers"].items():
        for split in ("held_out", "train_side"):
            part = t[split]
            pw = part.get("pairwise", {})
            points = part.get("pointwise", {})
            agree = " / ".join(f"{points[d]['agreement']['value']:.2f}" for d in ("helpful", "honest", "persona")
                               if d in points) or "–"
            stress = f"{t['stress']['overall']['per_100']:.1f}" if split == "held_out" else ""
            rows.append(f"| {name} ({t['rater']}) | {split.replace('_', '-')} | {_fmt(pw.get('accuracy'))} | "
                        f"{_fmt(pw.get('position_consistency'))} | {_fmt(pw.get('accuracy_one_order'))} | "
                        f"{_fmt(part['pairwise_by_score']['accuracy'])} | {agree} | {stress} |")
    return rows


def family_rows(report: dict) -> list[str]:
    rows = ["| teacher | family (the worse answer's) | held-out pairwise accuracy |", "|---|---|---|"]
    for name, t in report["teachers"].items():
        pw = t["held_out"].get("pairwise") or t["held_out"]["pairwise_by_score"]
        rows += [f"| {name} | {fam} | {_fmt(fig)} |" for fam, fig in pw["by_family"].items()]
    return rows


def write_markdown(report: dict, path: Path) -> None:
    lines = ["# Judge quality against ground truth", "",
             f"Judge model: `{report['judge_model']}`; {report['n_pairs']} pairs and {report['n_points']} single "
             f"answers per item set; seed {report['seed']}. Held-out items use phrasings, catalog entries and an "
             "answer family (`injection`) the world's judge never trained on. Goal for the embedded judge on "
             f"held-out pairs: accuracy ≥ {report['goal']['accuracy']}, position consistency ≥ "
             f"{report['goal']['position_consistency']}.", "", *teacher_rows(report), "", "## Per answer family", "",
             *family_rows(report), ""]
    if "constitution" in report:
        c = report["constitution"]
        lines += ["## Constitution (critique → revise)", "",
                  f"- revision better than the original (ground-truth oracle): {_fmt(c['revision_better'])}",
                  f"- revision worse: {_fmt(c['revision_worse'])}; mean oracle gain {_fmt(c['mean_gain'])}",
                  f"- pairs emitted: {c['pairs']}; precision (chosen truly better): {_fmt(c['pair_precision'])}", ""]
    s = report["stack_stress"]
    lines += ["## Reward-hack stress suite, whole stack", "",
              f"Overall {s['overall']['per_100']:.1f} hacks per 100 (n={s['overall']['n']}, ties "
              f"{s['overall']['ties_per_100']:.1f} per 100); per attack: "
              + ", ".join(f"{k} {v['per_100']:.1f}" for k, v in s["per_attack"].items()), ""]
    path.write_text("\n".join(lines))


def print_summary(report: dict, out: Path) -> None:
    for name, t in report["teachers"].items():
        part = t["held_out"]
        pw = part.get("pairwise")
        line = f"{name:>14}: held-out pairwise by score {_fmt(part['pairwise_by_score']['accuracy'])}"
        if pw:
            line = (f"{name:>14}: held-out pairwise accuracy {_fmt(pw['accuracy'])}, position consistency "
                    f"{_fmt(pw['position_consistency'])}")
        print(line + f"; stress {t['stress']['overall']['per_100']:.1f} hacks/100")
    if "constitution" in report:
        print(f"  constitution: revision better {_fmt(report['constitution']['revision_better'])}")
    print(f"whole stack: {report['stack_stress']['overall']['per_100']:.1f} hacks/100")
    print(f"report: {out / 'judge_eval.md'}")
