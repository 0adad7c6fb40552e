"""The data of the Distill, Review and Run pages, read from the run directory and the studio log."""

from __future__ import annotations

from collections import Counter

from ouro_ray.data.studio import KINDS, summary_version
from ouro_ray.judges.human import minutes_per_1k_pairs
from ouro_ray.studio.rundata import RunData, StudioError, summary_of

PENDING = "pending"
"""The Distill page's tab of chat dialogues the next round will read."""
MAIN_FIGURES = ("reward_mean", "grade_mean", "grade_pass", "win_rate", "safety", "over_refusal", "persona",
                "fact_f1", "reward_hacks", "kl", "human_minutes")
"""The metrics.json figures the Run page tabulates (those a run has)."""
PLOTS = ("metrics.png", "grade_gap.png")
"""The run's plots the Run page shows."""


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise StudioError(422, f"{name} = {value!r}: not a round number; fix: pick one from the list") from None


# ---------------------------------------------------------------- Distill (stage 2)


def distill_page(run: RunData, tab: str | None) -> dict:
    """The dialogues of one tab (a round, or the pending chat dialogues) beside their current summaries."""
    rounds = run.rounds("summaries.parquet")
    pending = run.pending_dialogs()
    tabs = [{"key": PENDING, "label": f"next round ({len(pending)} chat)"}] if pending else []
    tabs += [{"key": str(r), "label": f"round {r}"} for r in reversed(rounds)]
    if tab is None:
        tab = tabs[0]["key"] if tabs else None
    if tab is None:
        return {"tabs": [], "tab": None, "items": []}
    if tab == PENDING:
        r, turns = None, {d["dialog_id"]: d["turns"] for d in pending}
    else:
        r = _int(tab, "round")
        if r not in rounds:
            raise StudioError(404, f"round = {r}: no summaries on disk for it; rounds with summaries: "
                                   f"{', '.join(map(str, rounds)) or 'none'}")
        turns = run.round_dialogs(r)
    originals = run.pending_drafts() if r is None else run.round_summaries(r)
    edits = run.log.latest_summaries()
    items = []
    for dialog_id, original in originals.items():
        edit = edits.get(dialog_id)
        summary = summary_of(edit if edit is not None else original)
        items.append({"dialog_id": dialog_id, "round": r, "turns": turns.get(dialog_id, []), "summary": summary,
                      "base": summary_version(summary), "edited_at": edit["at"] if edit else None})
    return {"tabs": tabs, "tab": tab, "items": items}


# ---------------------------------------------------------------- Review queue (stage 5)


def _teachers(item: dict) -> list[dict]:
    return [{"name": name, "scores": sorted((v.get("scores") or {}).items()), "notes": v.get("notes")}
            for name, v in (item.get("teachers") or {}).items()]


def review_page(run: RunData, round_filter: str | None, reason_filter: str | None) -> dict:
    """The review items, newest round first, with what must be preserved, the other candidates of the prompt
    and the person's last label and pair choice."""
    all_items = sorted(run.review_items(), key=lambda i: -i["round"])  # stable: queue order within a round
    rounds = sorted({i["round"] for i in all_items}, reverse=True)
    reasons = sorted({i["reason"] for i in all_items})
    wanted_round = _int(round_filter, "round") if round_filter else None
    labels = {(s["round"], s["prompt_id"], s["candidate_id"]): s["scores"] for s in run.log.read("scores").records}
    pairs = {(p["round"], p["prompt_id"]): p for p in run.log.read("pairs").records}
    items = []
    for item in all_items:
        if (wanted_round is not None and item["round"] != wanted_round) or (reason_filter and item["reason"] != reason_filter):
            continue
        r, pid, cid = item["round"], item["prompt_id"], item["candidate_id"]
        others = [{"candidate_id": k, "text": t} for k, t in run.candidates(r, pid).items() if k != cid]
        items.append({**item, "teachers": _teachers(item), "target": run.target(r, pid), "others": others,
                      "label": labels.get((r, pid, cid)), "pair": pairs.get((r, pid))})
    return {"items": items, "rounds": rounds, "reasons": reasons, "round": wanted_round, "reason": reason_filter or "",
            "total": len(all_items)}


# ---------------------------------------------------------------- Run


def _figure(row: dict, key: str) -> dict | None:
    value = row.get(key)
    if not isinstance(value, (int, float)):
        return None
    ci = row.get(f"{key}_ci")
    return {"value": value, "ci": ci if isinstance(ci, list) and len(ci) == 2 and None not in ci else None}


def review_counts(run: RunData) -> list[dict]:
    """Per round: queued items, unreadable verdicts, disagreements, spot checks, and how many the studio labelled
    and paired."""
    items = run.review_items()
    queued = {(i["round"], i["prompt_id"], i["candidate_id"]) for i in items}
    labelled = Counter(k[0] for k in {(s["round"], s["prompt_id"], s["candidate_id"])
                                      for s in run.log.read("scores").records} & queued)
    paired = Counter(p["round"] for p in run.log.read("pairs").records)
    rows = []
    for r in sorted({i["round"] for i in items}, reverse=True):
        mine = [i for i in items if i["round"] == r]
        rows.append({"round": r, "queued": len(mine), "unreadable": sum(i["reason"] == "unreadable" for i in mine),
                     "disagreements": sum(i["reason"] == "disagreement" for i in mine),
                     "spot_checks": sum(i["reason"] == "spot check" for i in mine), "labelled": labelled[r],
                     "pairs": paired[r]})
    return rows


def human_minutes(run: RunData) -> dict:
    """The studio's human time per kind of action: count, minutes, minutes per 1k actions; and all minutes
    per 1k preference pairs picked."""
    rows, total, quarantined = [], 0.0, 0
    for kind in KINDS:
        read = run.log.read(kind)
        seconds = sum(float(r.get("seconds", 0.0)) for r in read.records)
        total += seconds
        quarantined += read.quarantined
        rows.append({"kind": kind, "actions": len(read.records), "minutes": seconds / 60.0,
                     "per_1k": seconds / 60.0 / len(read.records) * 1000.0 if read.records else None})
    n_pairs = next(r["actions"] for r in rows if r["kind"] == "pairs")
    return {"rows": rows, "minutes": total / 60.0, "per_1k_pairs": minutes_per_1k_pairs(total, n_pairs),
            "quarantined": quarantined}


def run_page(run: RunData) -> dict:
    metrics = run.metrics()
    columns = [k for k in MAIN_FIGURES if any(_figure(m, k) for m in metrics)]
    table = [{"round": m.get("round"), "cells": [_figure(m, k) for k in columns]} for m in metrics]
    return {"columns": columns, "metrics": table, "plots": [p for p in PLOTS if (run.path / p).is_file()],
            "review": review_counts(run), "minutes": human_minutes(run), "state": run.state()}
