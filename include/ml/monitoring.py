"""The monitoring report of a pipeline: what its runs, versions, drift, scoring and realised
performance say, as plain dicts (the dashboard's JSON API), rendered to HTML by the templates of
:mod:`include.ml.presentation` (the dashboard's pages, the standalone report file; the alert emails
share their comparison and drift tables).

Inputs are the files the pipeline writes: the registry (versions, production pointer, audit log),
the run history and run workspaces, the scoring and performance histories; missing files give
empty sections. A failed run's history line (``state: failed``) shows with its step, error and
quarantine folder; Airflow's own view of the DAG runs (a run still going, or one that failed without
writing that line) can be passed in as plain dicts: this module never imports Airflow.

Charts are inline SVG drawn here (no JavaScript, no network), so a report file opens offline: their
geometry is arithmetic, clearer in Python than in a template, and every text or attribute value they
embed goes through ``escape``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from include.ml.config import PipelineConfig
from include.ml.presentation import LEVEL_COLOURS, Markup, escape, number, render
from include.ml.records import DECIDED

DASHBOARD_PREFIX = "/ml-models"  # where the Airflow plugin mounts the dashboard on the API server
UI_ROUTE = "/plugin/ml-models"  # where the Airflow UI shows the dashboard (the plugin's react app)
RUNBOOK_PAGE = f"{DASHBOARD_PREFIX}/runbook"  # RUNBOOK.md as a page, linked from the DAG docs
OPS_DAG = "ml_model_ops"  # the DAG that promotes or rolls back by hand (dags/ml_model_ops.py)
LOG_TASKS = ("drift_check",)  # the task whose log explains a run's decision (the branch task follows)
OUTCOMES = ("promote", "hold", "reject", "failed", "running", "waiting")


# -- links ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """URLs of the dashboard and of Airflow's UI pages. ``airflow`` is the Airflow base URL; empty
    gives links relative to the server (what the dashboard pages use)."""

    airflow: str = ""

    @classmethod
    def from_env(cls) -> Links:
        """Absolute links for emails and report files: ``$ML_AIRFLOW_URL``, else Airflow's own
        ``$AIRFLOW__API__BASE_URL``, else http://localhost:8080."""
        base = os.environ.get("ML_AIRFLOW_URL") or os.environ.get("AIRFLOW__API__BASE_URL") or "http://localhost:8080"
        return cls(base.rstrip("/"))

    def dashboard(self, pipeline: str | None = None) -> str:
        """The page inside the Airflow UI (overview, or ``pipeline``'s page)."""
        return f"{self.airflow}{UI_ROUTE}/" + (f"pipelines/{quote(pipeline, safe='')}" if pipeline else "")

    def page(self, pipeline: str | None = None) -> str:
        """The same page as a document of its own, served by the plugin's API app."""
        return f"{self.airflow}{DASHBOARD_PREFIX}/" + (f"pipelines/{quote(pipeline, safe='')}" if pipeline else "")

    def api(self, pipeline: str | None = None) -> str:
        return f"{self.airflow}{DASHBOARD_PREFIX}/api/pipelines" + (f"/{quote(pipeline, safe='')}" if pipeline else "")

    def dag(self, dag_id: str) -> str:
        return f"{self.airflow}/dags/{quote(dag_id, safe='')}"

    def run(self, dag_id: str, run_id: str) -> str:
        return f"{self.dag(dag_id)}/runs/{quote(run_id, safe='')}"

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        return f"{self.run(dag_id, run_id)}/tasks/{quote(task_id, safe='')}"


# -- reading the files ---------------------------------------------------------------------


def _record(workspace, record):
    """A step's record from a run's workspace, or None when missing or unreadable."""
    try:
        return workspace.read_or_none(record)
    except ValueError:  # a damaged record shows as missing, not as a broken page
        return None


def scoring_history(config: PipelineConfig) -> list[dict]:
    """Batch-scoring summaries, oldest first (the registry's scoring history)."""
    from include.ml.scoring import history

    return history(config)


def performance_history(config: PipelineConfig) -> list[dict]:
    """Realised-performance records, oldest first (the registry's performance history)."""
    from include.ml.performance import history

    return history(config)


def _registry(config: PipelineConfig):
    from include.ml.registry import ModelRegistry

    return ModelRegistry(config.registry_path)


def _round(value: object, digits: int = 6) -> object:
    return round(value, digits) if isinstance(value, float) else value


def _quantity(value: object) -> int | float | None:
    """A count or measurement read from a history file, or None when the file holds anything else there
    (text, a list, a flag: a tampered line is shown as missing, not computed with)."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _share(part: object, whole: object) -> float | None:
    part, whole = _quantity(part), _quantity(whole)
    return round(part / whole, 4) if whole and part is not None else None


# -- the data ------------------------------------------------------------------------------


def _run_row(config: PipelineConfig, entry: dict, links: Links) -> dict:
    drift = entry.get("drift_by_feature") or {}
    drifted = entry.get("drifted_features") or []
    branch = entry.get("branch")
    failed = entry.get("state") == "failed"  # a FailedRun line: the step, its error, the quarantine folder
    return {
        "run_id": entry["run_id"], "logical_date": entry.get("logical_date"), "outcome": "failed" if failed else branch,
        "airflow_state": "failed" if failed else "success", "failed_step": entry.get("step") if failed else None,
        "error": entry.get("error") if failed else None, "quarantined_to": entry.get("quarantined_to"),
        "version": entry.get("version"), "score": _round(entry.get("score")),
        "champion_score": _round(entry.get("champion_score")), "production_before": entry.get("production_before"),
        "production_after": entry.get("production_after"), "switched": entry.get("switched"),
        "drift_verdict": entry.get("drift_verdict"), "drifted_features": drifted,
        "drifted_share": round(len(drifted) / len(drift), 4) if drift else None,
        "rows": entry.get("rows"), "validation_warnings": entry.get("validation_warnings"),
        "reasons": entry.get("reasons") or [], "finished_at": entry.get("finished_at"),
        "links": {"run": links.run(config.dag_id, entry["run_id"]),
                  "decision_log": links.task_log(config.dag_id, entry["run_id"], "drift_check"),
                  "outcome_log": links.task_log(config.dag_id, entry["run_id"],
                                                entry.get("step") if failed else branch or "report")},
    }


def _airflow_only_row(config: PipelineConfig, run: dict, links: Links) -> dict:
    """A run Airflow knows about that wrote no history line: failed, waiting for its batch (``run``'s
    ``waiting_for_batch``), or not finished yet."""
    state = str(run.get("state") or "unknown")
    outcome = "failed" if state == "failed" else (
        ("waiting" if run.get("waiting_for_batch") else "running") if state in ("running", "queued") else state)
    return {
        "run_id": run["run_id"], "logical_date": (run.get("logical_date") or "")[:10] or None, "outcome": outcome,
        "airflow_state": state, "failed_step": None, "error": None, "quarantined_to": None,
        "version": None, "score": None, "champion_score": None,
        "production_before": None, "production_after": None, "switched": False, "drift_verdict": None,
        "drifted_features": [], "drifted_share": None, "rows": None, "validation_warnings": None,
        "reasons": [f"Airflow run {state}: see its task logs"] if outcome == "failed" else [],
        "finished_at": run.get("end_date"),
        "links": {"run": links.run(config.dag_id, run["run_id"]), "decision_log": None, "outcome_log": None},
    }


def runs(config: PipelineConfig, airflow_runs: list[dict] | None = None, links: Links = Links()) -> list[dict]:
    """Training runs by logical date (oldest first): each history line, plus the runs Airflow lists
    (``{run_id, state, logical_date, end_date}``) that wrote none, as ``failed`` or ``running``."""
    from include.ml.steps import run_history

    history = run_history(config)
    rows = [_run_row(config, entry, links) for entry in history]
    recorded = {row["run_id"] for row in rows}
    rows += [_airflow_only_row(config, run, links) for run in airflow_runs or []
             if run.get("run_id") not in recorded and str(run.get("state")) in ("failed", "running", "queued")]
    return sorted(rows, key=lambda r: (r["logical_date"] or "", r["finished_at"] or ""))


def _latest(rows: list[dict]) -> dict | None:
    """The run that finished last (a rerun of an old date counts as the latest)."""
    return max(rows, key=lambda r: (r["finished_at"] or "9999" if r["outcome"] in ("running", "waiting")
                                    else r["finished_at"] or "",
                                    r["logical_date"] or ""), default=None)


def _production(config: PipelineConfig, registry) -> dict | None:
    pointer = registry.pointer()
    if not pointer:
        return None
    version = pointer["version"]
    try:
        value = registry.metadata(version).get("metrics", {}).get(config.metric)
    except Exception:  # a damaged version folder must not take the page down
        value = None
    switches = [a for a in registry.audit() if isinstance(a, dict) and a.get("to") == version]
    return {"version": version, "since": pointer.get("since"), "actor": pointer.get("actor"),
            "reason": pointer.get("reason"), "action": switches[-1].get("action") if switches else None,
            "metric_value": _round(value)}


def _realised(config: PipelineConfig) -> list[dict]:
    return [{"scoring_date": r.get("scoring_date"), "labels_date": r.get("labels_date"),
             "model_version": r.get("model_version"), "metric": r.get("metric", config.metric),
             "value": _round(r.get("value")), "validation_score": _round(r.get("validation_score")),
             "rows": r.get("rows"), "status": r.get("status"), "reasons": r.get("reasons") or [],
             "measured_at": r.get("measured_at"), "estimated_value": _round(r.get("estimated_value")),
             "estimation_error": _round(r.get("estimation_error"))}
            for r in performance_history(config)]


def pipeline_overview(config: PipelineConfig, airflow_runs: list[dict] | None = None,
                      links: Links = Links(), _runs: list[dict] | None = None) -> dict:
    """One pipeline's row of the overview: production, last run, metric, drift, realised performance."""
    rows = runs(config, airflow_runs, links) if _runs is None else _runs
    trained = [r for r in rows if r["outcome"] in ("promote", "hold", "reject")]
    last, last_trained = _latest(rows), _latest(trained)
    realised = _realised(config)
    production = _production(config, _registry(config))
    return {
        "pipeline": config.name, "description": config.description, "task": config.task, "dag_id": config.dag_id,
        "metric": config.metric, "greater_is_better": config.greater_is_better, "min_score": config.gates.min_score,
        "production": production, "promoted_at": production["since"] if production else None,
        "last_run": None if last is None else {k: last[k] for k in (
            "run_id", "logical_date", "outcome", "version", "score", "finished_at", "links")},
        "runs": len(rows),
        "last_candidate": None if last_trained is None else {k: last_trained[k] for k in (
            "run_id", "logical_date", "outcome", "version", "score", "champion_score", "production_before",
            "finished_at", "links")},
        "primary_metric": None if last_trained is None else last_trained["score"],
        "drift_verdict": None if last_trained is None else last_trained["drift_verdict"],
        "drifted_features": [] if last_trained is None else last_trained["drifted_features"],
        "realised": realised[-1] if realised else None,
        "metric_series": [{"logical_date": r["logical_date"], "value": r["score"], "version": r["version"],
                           "outcome": r["outcome"]} for r in trained],
        "links": {"dashboard": links.dashboard(config.name), "api": links.api(config.name),
                  "dag": links.dag(config.dag_id), "ops": links.dag(OPS_DAG)},
    }


def overview(configs: list[PipelineConfig], airflow_runs: dict[str, list[dict]] | None = None,
             links: Links = Links()) -> list[dict]:
    """The overview rows of ``configs``; ``airflow_runs`` maps a DAG id to Airflow's runs of it."""
    return [pipeline_overview(c, (airflow_runs or {}).get(c.dag_id), links) for c in configs]


def _heatmap(config: PipelineConfig, rows: list[dict]) -> dict:
    """Drift per feature over runs: ``cells[i][j]`` is feature i in run j (``None``: not compared)."""
    from include.ml.steps import run_history

    by_run = {h["run_id"]: h.get("drift_by_feature") or {} for h in run_history(config) if h.get("state") != "failed"}
    columns = [r for r in rows if r["run_id"] in by_run]
    severity = {"severe": 3, "drifted": 2}
    worst: dict[str, int] = {}
    for r in columns:
        for name, cell in by_run[r["run_id"]].items():
            worst[name] = max(worst.get(name, 0), severity.get(cell.get("level"), 0))
    features = sorted(worst, key=lambda n: (-worst[n], n))
    return {
        "features": features,
        "runs": [{"run_id": r["run_id"], "logical_date": r["logical_date"]} for r in columns],
        "statistics": {n: next((by_run[r["run_id"]][n]["statistic"] for r in columns if n in by_run[r["run_id"]]),
                               None) for n in features},
        "cells": [[None if n not in by_run[r["run_id"]] else
                   {"value": _round(by_run[r["run_id"]][n].get("value")), "level": by_run[r["run_id"]][n].get("level")}
                   for r in columns] for n in features],
    }


def _versions(config: PipelineConfig, registry, production: str | None) -> list[dict]:
    out = []
    for version in registry.versions():
        try:
            meta = registry.metadata(version)
        except Exception:  # one unreadable version is shown as such, not a broken page
            out.append({"version": version, "decision": "unreadable", "is_production": version == production})
            continue
        champion = meta.get("champion") or {}
        gates = meta.get("gates") or {}
        record = meta.get("promotion_record") or {}
        out.append({
            "version": version, "is_production": version == production, "decision": meta.get("decision"),
            "held": meta.get("decision") == DECIDED["hold"] and version != production,  # a person may promote it
            "logical_date": meta.get("logical_date"), "run_id": meta.get("run_id"),
            "registered_at": meta.get("registered_at") or meta.get("created_at"),
            "metric_value": _round((meta.get("metrics") or {}).get(config.metric)),
            "metrics": {k: _round(v) for k, v in (meta.get("metrics") or {}).items()},
            "champion_version": champion.get("version"),
            "champion_value": _round((champion.get("metrics") or {}).get(config.metric)),
            "gates_passed": gates.get("passed"), "gate_reasons": gates.get("reasons") or [],
            "interval": record.get("interval"), "reasons": meta.get("reasons") or [],
            "rows": (meta.get("data") or {}).get("rows"),
        })
    return out


def comparison(outcome: dict, evaluation: dict | None = None) -> dict:
    """Champion/challenger of one run: both scores on the same holdout, the difference, the
    bootstrap interval (from the run's evaluation record, as a dict, when given) and the decision."""
    evaluation = evaluation or {}
    score, champion = outcome.get("score"), outcome.get("champion_score")
    gates = evaluation.get("gates") or {}
    return {
        "metric": outcome.get("metric"), "candidate_version": outcome.get("version"),
        "candidate_score": _round(score), "champion_version": outcome.get("production_before"),
        "champion_score": _round(champion),
        "difference": _round(score - champion) if isinstance(score, float) and isinstance(champion, float) else None,
        "interval": gates.get("interval"), "gates_passed": gates.get("passed"),
        "gate_reasons": gates.get("reasons") or [], "holdout_rows": evaluation.get("holdout_rows"),
        "decision": outcome.get("branch") or outcome.get("outcome"), "reasons": outcome.get("reasons") or [],
    }


def _estimated(config: PipelineConfig) -> list[dict]:
    """Each scoring date's estimated primary metric per version (:mod:`include.ml.estimation`)."""
    return [{"date": s.get("logical_date"), "version": version, "value": _round(e.get("value")),
             "lower": _round(e.get("lower")), "upper": _round(e.get("upper")), "rows": e.get("rows"),
             "method": e.get("method"), "status": e.get("status"), "reasons": e.get("reasons") or []}
            for s in scoring_history(config) for version, e in _mapping(s.get("estimated_performance")).items()
            if isinstance(e, dict)]


def _mapping(value: object) -> dict:
    """``value`` when it is a dict (a history line's field, read from disk), else empty."""
    return value if isinstance(value, dict) else {}


def _importance(registry, version: str | None) -> dict | None:
    """The production version's permutation importance (most important first), or None."""
    from include.ml.errors import PipelineError

    try:
        found = registry.metadata(version).get("importance") if version else None
    except (OSError, ValueError, PipelineError):
        return None
    return {"version": version, **found} if isinstance(found, dict) else None


def pipeline_detail(config: PipelineConfig, airflow_runs: list[dict] | None = None,
                    links: Links = Links()) -> dict:
    """Everything the pipeline page shows, as JSON-ready dicts."""
    from include.ml.records import EvaluationRecord, RunWorkspace, ValidationRecord
    from include.ml.steps import run_history

    registry = _registry(config)
    rows = runs(config, airflow_runs, links)
    summary = pipeline_overview(config, airflow_runs, links, _runs=rows)
    history = [h for h in run_history(config) if h.get("state") != "failed"]  # the latest trained run
    latest = None
    if history:
        last = max(history, key=lambda h: h.get("finished_at") or "")
        workspace = RunWorkspace(Path(last["workspace"])) if last.get("workspace") else None
        validation_record = _record(workspace, ValidationRecord) if workspace else None
        evaluation = _record(workspace, EvaluationRecord) if workspace else None
        validation = validation_record.to_dict() if validation_record else {}
        drift = (workspace.read_json_or_none(RunWorkspace.DRIFT) if workspace else None) or {}
        drift = drift if isinstance(drift, dict) else {}
        latest = {
            "run_id": last["run_id"], "logical_date": last.get("logical_date"),
            "validation": {"rows": validation.get("rows", last.get("rows")), "features": validation.get("features"),
                           "feature_origin": validation.get("feature_origin"),
                           "reference_version": validation.get("reference_version"),
                           "warnings": validation.get("warnings", [])},
            "comparison": comparison(last, evaluation.to_dict() if evaluation else None),
            "drift": drift if drift.get("features") else None,
            "drift_verdict": last.get("drift_verdict"),
        }
    scoring = [{
        "logical_date": s.get("logical_date"), "run_id": s.get("run_id"), "partitions": s.get("partitions"),
        "rows": s.get("rows"), "scored": s.get("scored"), "rejected": s.get("rejected"),
        "reject_share": _share(s.get("rejected"), s.get("rows")),
        "reject_reasons": s.get("reject_reasons") or {}, "versions": s.get("versions") or [],
        "prediction_mean": _round(s.get("prediction_mean")),
        "prediction_drift": (s.get("prediction_drift") or {}).get("verdict"), "finished_at": s.get("finished_at"),
    } for s in scoring_history(config)]
    return {
        **summary,
        "runs": rows,
        "metric_over_time": {"validation": summary["metric_series"],
                             "realised": [{"date": r["scoring_date"], "value": r["value"],
                                           "version": r["model_version"], "status": r["status"]}
                                          for r in _realised(config)],
                             "estimated": _estimated(config)},
        # realised - estimated on the same rows, by scoring date: a large gap is concept drift
        "estimation_error": [{"date": r["scoring_date"], "value": r.get("estimation_error"),
                              "version": r["model_version"]} for r in _realised(config)
                             if r.get("estimation_error") is not None],
        "importance": _importance(registry, (summary["production"] or {}).get("version")),
        "drift_heatmap": _heatmap(config, rows),
        "versions": _versions(config, registry, (summary["production"] or {}).get("version")),
        "audit": registry.audit(),
        "latest": latest,
        "scoring": scoring,
        "performance": _realised(config),
    }


# -- charts (inline SVG) ---------------------------------------------------------------------


def label_every(labels: list[str], slot: float, font_size: float = 10) -> int:
    """Show every n-th of ``labels`` (spaced ``slot`` pixels apart) so that no two overlap."""
    widest = max((len(label) for label in labels), default=0) * font_size * 0.62 + 8  # ~average glyph width
    return max(1, math.ceil(widest / slot)) if slot > 0 else 1


def _legend(parts: list[str], entries: list[tuple[str, str]], y: float, x: float = 8) -> None:
    """A legend row at ``y``: each entry (``mark`` SVG at the origin, ``text``) with its own width."""
    for mark, text in entries:
        parts.append(f"<g transform='translate({x:.0f},{y - 9:.0f})'>{mark}</g>"
                     f"<text x='{x + 22:.0f}' y='{y}' font-size='11'>{escape(text)}</text>")
        x += 22 + len(text) * 6.5 + 18


def line_chart_svg(series: list[dict], labels: list[str], title: str, threshold: float | None = None,
                   width: int = 720, height: int = 240, threshold_name: str = "threshold") -> Markup:
    """A line chart over categorical x ``labels``. Each series: ``{name, colour, points: {label:
    value}}``; a point has a tooltip with its label and value; ``threshold`` is a dashed line named
    ``threshold_name`` in the legend. X labels are thinned so that none overlap."""
    values = [v for s in series for v in s["points"].values() if isinstance(v, int | float)]
    if threshold is not None:
        values.append(threshold)
    if not labels or not values:
        return Markup(f"<svg class='chart' role='img' width='{width}' height='40'><title>{escape(title)}</title>"
                      f"<text x='8' y='24' font-size='12'>no data yet</text></svg>")
    left, right, top, bottom = 56, 40, 24, 44
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 0.05
    low, high = low - pad, high + pad
    step = (width - left - right) / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if len(labels) > 1 else (width - left - right) / 2)

    def y(v: float) -> float:
        return top + (high - v) / (high - low) * (height - top - bottom)

    parts = [f"<svg class='chart' role='img' viewBox='0 0 {width} {height}' width='{width}' height='{height}' "
             f"xmlns='http://www.w3.org/2000/svg'><title>{escape(title)}</title>",
             f"<text x='{left}' y='14' font-size='12' font-weight='bold'>{escape(title)}</text>"]
    for k in range(5):
        v = low + (high - low) * k / 4
        parts.append(f"<line class='grid' x1='{left}' x2='{width - right}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
                     f"stroke='#eee'/>"
                     f"<text x='{left - 6}' y='{y(v) + 4:.1f}' font-size='10' text-anchor='end'>{number(v, 3)}</text>")
    every = label_every(labels, step if len(labels) > 1 else width)
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f"<text x='{x(i):.1f}' y='{height - bottom + 16}' font-size='10' "
                         f"text-anchor='middle'>{escape(label)}</text>")
    if threshold is not None:
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y(threshold):.1f}' y2='{y(threshold):.1f}' "
                     f"stroke='#c62828' stroke-dasharray='4 3'><title>gate {threshold:g}</title></line>")
    for s in series:
        points = [(x(i), y(s["points"][label]), label, s["points"][label]) for i, label in enumerate(labels)
                  if isinstance(s["points"].get(label), int | float)]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(f"<polyline class='series' fill='none' stroke='{escape(s['colour'])}' stroke-width='2' "
                         f"points='{path}'/>")
        for px, py, label, value in points:
            parts.append(f"<circle class='point' cx='{px:.1f}' cy='{py:.1f}' r='3.5' fill='{escape(s['colour'])}'>"
                         f"<title>{escape(s['name'])} {escape(label)}: {number(value)}</title></circle>")
    legend = [(f"<line x1='0' x2='16' y1='5' y2='5' stroke='{escape(s['colour'])}' stroke-width='2'/>"
                f"<circle cx='8' cy='5' r='3.5' fill='{escape(s['colour'])}'/>", s["name"]) for s in series]
    if threshold is not None:
        legend.append(("<line x1='0' x2='16' y1='5' y2='5' stroke='#c62828' stroke-dasharray='4 3' "
                       "stroke-width='1.5'/>", f"{threshold_name} {threshold:g}"))
    _legend(parts, legend, height - 5, left)
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline_svg(values: list[float | None], title: str, width: int = 120, height: int = 28) -> Markup:
    """A small line of the metric over runs, for the overview table."""
    points = [(i, v) for i, v in enumerate(values) if isinstance(v, int | float)]
    if not points:
        return Markup(f"<svg class='spark' width='{width}' height='{height}'><title>{escape(title)}: no runs</title>"
                      f"</svg>")
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0
    n = max(len(values) - 1, 1)
    coords = " ".join(f"{2 + i * (width - 4) / n:.1f},{height - 3 - (v - low) / span * (height - 6):.1f}"
                      for i, v in points)
    last_x, last_y = coords.split(" ")[-1].split(",")
    return Markup(f"<svg class='spark' role='img' viewBox='0 0 {width} {height}' width='{width}' height='{height}' "
            f"xmlns='http://www.w3.org/2000/svg'><title>{escape(title)}</title>"
            f"<polyline fill='none' stroke='#1565c0' stroke-width='1.5' points='{coords}'/>"
            f"<circle cx='{last_x}' cy='{last_y}' r='2.5' fill='#1565c0'/></svg>")


def heatmap_svg(heatmap: dict, title: str = "Drift per feature over runs") -> Markup:
    """Features (rows) by runs (columns), coloured by drift level, with the gating statistic's value."""
    features, columns = heatmap["features"], heatmap["runs"]
    if not features or not columns:
        return Markup(f"<svg class='chart heatmap' role='img' width='360' height='40'><title>{escape(title)}</title>"
                f"<text x='8' y='24' font-size='12'>no drift comparisons yet (the first model has no reference)"
                f"</text></svg>")
    widest = max(len(n) * 6.2 + len(heatmap["statistics"].get(n) or "") * 5 for n in features)  # name + statistic
    left, top, cell_w, cell_h = max(190, int(widest) + 16), 40, 78, 20
    width, height = max(left + cell_w * len(columns) + 10, 560), top + cell_h * len(features) + 34
    parts = [f"<svg class='chart heatmap' role='img' viewBox='0 0 {width} {height}' width='{width}' "
             f"height='{height}' xmlns='http://www.w3.org/2000/svg'><title>{escape(title)}</title>",
             f"<text x='4' y='14' font-size='12' font-weight='bold'>{escape(title)}</text>"]
    for j, run in enumerate(columns):
        parts.append(f"<text x='{left + j * cell_w + cell_w / 2:.0f}' y='{top - 8}' font-size='10' "
                     f"text-anchor='middle'>{escape(run['logical_date'])}</text>")
    for i, name in enumerate(features):
        statistic = heatmap["statistics"].get(name) or ""
        parts.append(f"<text x='{left - 6}' y='{top + i * cell_h + 14}' font-size='11' text-anchor='end'>"
                     f"{escape(name)} <tspan class='muted' font-size='9'>{escape(statistic)}</tspan></text>")
        for j, cell in enumerate(heatmap["cells"][i]):
            x, y = left + j * cell_w, top + i * cell_h
            if cell is None:
                parts.append(f"<rect class='empty' x='{x}' y='{y}' width='{cell_w - 2}' height='{cell_h - 2}' "
                             f"fill='#f5f5f5'><title>{escape(name)}: not compared</title></rect>")
                continue
            value = cell.get("value")
            text = escape(number(value, 3))
            parts.append(
                f"<rect class='cell' x='{x}' y='{y}' width='{cell_w - 2}' height='{cell_h - 2}' "
                f"fill='{LEVEL_COLOURS.get(cell.get('level'), '#d8d8d8')}'><title>{escape(name)} on "
                f"{escape(columns[j]['logical_date'])}: {escape(statistic)} {text} ({escape(cell.get('level'))})"
                f"</title></rect>"
                f"<text class='on-cell' x='{x + cell_w / 2 - 1:.0f}' y='{y + 13}' font-size='10' "
                f"text-anchor='middle'>{text}</text>")
    _legend(parts, [(f"<rect width='10' height='10' fill='{LEVEL_COLOURS[level]}'/>", level.replace("_", " "))
                    for level in ("none", "drifted", "severe", "insufficient_data")]
            + [("<rect class='empty' width='10' height='10' fill='#f5f5f5' stroke='#999' stroke-width='0.5'/>",
                "not compared")], height - 8, 4)
    parts.append("</svg>")
    return Markup("".join(parts))


def scoring_svg(scoring: list[dict], title: str = "Rows scored and rejected per date") -> Markup:
    """Stacked bars per scoring date: scored (blue) and rejected (red), with a legend; date labels are
    thinned so that none overlap."""
    if not scoring:
        return Markup(f"<svg class='chart' role='img' width='360' height='40'><title>{escape(title)}</title>"
                f"<text x='8' y='24' font-size='12'>no batch scoring yet</text></svg>")
    left, top, bottom, bar = 64, 24, 52, 36
    width, height = max(left + len(scoring) * (bar + 12) + 20, 320), 212
    every = label_every([str(s.get("logical_date")) for s in scoring], bar + 12, 9)
    high = max((_quantity(s["rows"]) or 0) for s in scoring) or 1
    scale = (height - top - bottom) / high
    parts = [f"<svg class='chart' role='img' viewBox='0 0 {width} {height}' width='{width}' height='{height}' "
             f"xmlns='http://www.w3.org/2000/svg'><title>{escape(title)}</title>",
             f"<text x='4' y='14' font-size='12' font-weight='bold'>{escape(title)}</text>",
             f"<text x='{left - 6}' y='{top + 8}' font-size='10' text-anchor='end'>{number(high)}</text>"]
    for i, s in enumerate(scoring):
        x = left + i * (bar + 12)
        scored, rejected = _quantity(s.get("scored")) or 0, _quantity(s.get("rejected")) or 0
        base = height - bottom
        parts.append(f"<rect x='{x}' y='{base - scored * scale:.1f}' width='{bar}' height='{scored * scale:.1f}' "
                     f"fill='#1565c0'><title>{escape(s['logical_date'])}: {number(scored)} scored</title></rect>"
                     f"<rect x='{x}' y='{base - (scored + rejected) * scale:.1f}' width='{bar}' "
                     f"height='{rejected * scale:.1f}' fill='#c62828'><title>{escape(s['logical_date'])}: "
                     f"{number(rejected)} rejected</title></rect>")
        if i % every == 0:
            parts.append(f"<text x='{x + bar / 2}' y='{base + 14}' font-size='9' text-anchor='middle'>"
                         f"{escape(s['logical_date'])}</text>")
    _legend(parts, [("<rect width='10' height='10' fill='#1565c0'/>", "scored"),
                    ("<rect width='10' height='10' fill='#c62828'/>", "rejected")], height - 6, left)
    parts.append("</svg>")
    return Markup("".join(parts))


# -- HTML (the templates in include/ml/templates) ------------------------------------------


def _stamp(generated_at: str | None = None) -> str:
    return generated_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def drift_table_html(drift: dict | None) -> Markup:
    """The drift report's table (every feature, worst first, all statistics): the same in the
    dashboard, the report file and the held/promoted emails. Empty without a comparison."""
    if not drift or not drift.get("features"):
        return Markup("")
    from include.ml.drift import DriftReport

    return render("drift_table.html.j2", report=DriftReport.from_dict(drift))


def comparison_html(c: dict) -> Markup:
    """The champion/challenger comparison of a run (:func:`comparison`) as a two-column table."""
    return render("comparison.html.j2", comparison=c)


def render_overview(rows: list[dict], links: Links = Links(), generated_at: str | None = None,
                    embed: bool = False) -> str:
    """The overview page: one row per pipeline (:func:`overview`); ``embed``: without the document
    around it, for the page inside the Airflow UI."""
    sparklines = [sparkline_svg([p["value"] for p in r["metric_series"]], f"{r['metric']} over runs") for r in rows]
    return str(render("overview.html.j2", title="ML models", rows=rows, sparklines=sparklines, links=links,
                      generated_at=_stamp(generated_at), embed=embed))


def render_pipeline(detail: dict, links: Links = Links(), generated_at: str | None = None,
                    embed: bool = False) -> str:
    """The pipeline page (and the standalone report file): every section of :func:`pipeline_detail`;
    ``embed``: without the document around it, with the held versions' promote forms, for the page
    inside the Airflow UI."""
    d = detail
    metric = d["metric"]
    series = d["metric_over_time"]
    dates = {p["logical_date"] for p in series["validation"]} | {p["date"] for p in series["realised"]} \
        | {p["date"] for p in series.get("estimated", [])}
    labels = sorted(dates - {None})
    charts = {
        # metric over time: validation scores by logical date, realised by scoring date
        "metric": line_chart_svg(
            [{"name": "validation (holdout)", "colour": "#1565c0",
              "points": {p["logical_date"]: p["value"] for p in series["validation"]}},
             {"name": "realised (labels)", "colour": "#2e7d32",
              "points": {p["date"]: p["value"] for p in series["realised"]}},
             {"name": "estimated (no labels)", "colour": "#ef6c00",
              "points": {p["date"]: p["value"] for p in series.get("estimated", [])}}],
            labels, f"{metric}: validation and realised", threshold=d["min_score"],
            threshold_name=f"gate: minimum {metric}"),
        "estimation_error": line_chart_svg(
            [{"name": "realised - estimated", "colour": "#6a1b9a",
              "points": {p["date"]: p["value"] for p in d.get("estimation_error", [])}}],
            sorted({p["date"] for p in d.get("estimation_error", [])}), f"{metric}: estimation error over time",
            threshold=0.0, threshold_name="no error"),
        "heatmap": heatmap_svg(d["drift_heatmap"]),
        "scoring": scoring_svg(d["scoring"]),
    }
    drift = (d["latest"] or {}).get("drift")
    drift_report = None
    if drift and drift.get("features"):
        from include.ml.drift import DriftReport

        drift_report = DriftReport.from_dict(drift)
    return str(render("pipeline.html.j2", title=f"ML models: {d['pipeline']}", d=d, charts=charts,
                      drift_report=drift_report, links=links, generated_at=_stamp(generated_at), embed=embed,
                      OPS_DAG=OPS_DAG))
