"""The pipeline's alert emails: subject and HTML body for each event, from plain dicts.

Every email names the pipeline, the run and the logical date, says what happened and what to
do, and points to its section of RUNBOOK.md. Sending is the orchestrator's job (Airflow's
SmtpNotifier); this module only writes the words.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass

# event -> (subject tag, runbook anchor, what to do)
EVENTS: dict[str, tuple[str, str, str]] = {
    "promoted": (
        "PROMOTED",
        "alert-model-promoted",
        "Nothing, unless the new version misbehaves: then roll back with "
        "<code>python -m include.ml models rollback</code> (see the runbook).",
    ),
    "rerun": (
        "RERUN, nothing changed",
        "alert-rerun-nothing-changed",
        "Nothing: this date was already trained on the same data with the same config, so its version was "
        "reused and production was not switched again.",
    ),
    "held": (
        "HOLD (drift)",
        "alert-drift-hold",
        "Production was left unchanged. Look at the drifted features below: if the change is real "
        "and expected, promote the held version by hand; if it is an upstream bug, fix the feed.",
    ),
    "rejected": (
        "REJECTED",
        "alert-candidate-rejected",
        "Production was left unchanged. The candidate failed a quality gate: check the batch "
        "(label delays, a broken feature) before the next run.",
    ),
    "production_changed": (
        "PRODUCTION CHANGED",
        "alert-production-changed-by-hand",
        "Nothing, if you made this change. If you did not, check the audit log "
        "(<code>python -m include.ml models history</code>) and roll back (see the runbook).",
    ),
    "artifact_tampered": (
        "TAMPERED model artifact",
        "alert-tampered-model-artifact",
        "Do not load the file. Production's artifact no longer matches the sha256 recorded at registration: "
        "roll back to another version (see the runbook), keep the file for investigation, and find out who "
        "or what wrote to the registry.",
    ),
    "scoring_rejects": (
        "TOO MANY REJECTS",
        "alert-too-many-rejects",
        "A scoring file had more bad rows than scoring.max_reject_share allows, so none of its predictions were "
        "published. The reasons per row are in the error below: get the file fixed upstream and redeliver it, "
        "then clear the task (see the runbook).",
    ),
    "task_failed": (
        "FAILED task",
        "alert-task-failed",
        "Open the task log, fix the cause named below, then clear the task to rerun it. "
        "Production is unchanged by a failed run.",
    ),
    "run_failed": (
        "FAILED run",
        "alert-run-failed",
        "One or more tasks failed after their retries; their own emails say why. "
        "Production is unchanged by a failed run.",
    ),
    "performance_drop": (
        "PERFORMANCE DROP",
        "alert-performance-drop",
        "The production model does worse on real outcomes than it did at validation, or worse than the "
        "floor. Check the scoring dates and versions below, compare with the drift history, and retrain on "
        "recent labelled data or roll back (see the runbook).",
    ),
    "prediction_drift": (
        "PREDICTION DRIFT",
        "alert-prediction-drift",
        "The model's predictions on today's data are distributed differently from those on its holdout rows "
        "at training. Check the scoring inputs (an upstream change) and the input-drift history; labels, "
        "when they arrive, will tell whether accuracy suffered.",
    ),
}


def runbook_link(anchor: str) -> str:
    """Where a runbook section lives: ``$ML_RUNBOOK_URL`` (e.g. the repository's page) or the file name."""
    return f"{os.environ.get('ML_RUNBOOK_URL', 'RUNBOOK.md')}#{anchor}"


@dataclass(frozen=True)
class Email:
    subject: str
    html: str


def _table(rows: list[tuple[str, object]]) -> str:
    cells = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0'>{html.escape(str(k))}</th>"
        f"<td>{html.escape('' if v is None else str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def _drift_section(drift: dict) -> str:
    """The drift report's HTML table (features by severity), when the run compared with a reference."""
    from include.ml.monitoring import drift_table_html

    table = drift_table_html(drift)
    return "<h3>Drift by feature</h3>" + table if table else ""


def _wrap(event: str, headline: str, facts: list[tuple[str, object]], extra: str = "") -> str:
    _, anchor, todo = EVENTS[event]
    link = runbook_link(anchor)
    return (
        f"<html><body><h2>{html.escape(headline)}</h2>{_table(facts)}"
        f"<h3>What to do</h3><p>{todo}</p>{extra}"
        f"<p>Runbook: <a href='{html.escape(link)}'>{html.escape(link)}</a></p></body></html>"
    )


def outcome_email(outcome: dict, drift: dict | None = None, run_url: str | None = None) -> Email:
    """Email for a finished decision (``outcome['branch']`` is promote, hold or reject)."""
    event = {"promote": "promoted", "hold": "held", "reject": "rejected"}[outcome["branch"]]
    tag = EVENTS[event][0]
    pipeline, ds, version = outcome["pipeline"], outcome["logical_date"], outcome["version"]
    if event == "promoted" and not outcome.get("switched", True):
        event, tag = "rerun", EVENTS["rerun"][0]
    subject = {
        "promoted": f"[ml:{pipeline}] {tag}: {version} is now in production ({ds})",
        "rerun": f"[ml:{pipeline}] {tag}: {version} was already registered for {ds}; production stays "
        f"{outcome['production_after']}",
        "held": f"[ml:{pipeline}] {tag}: {version} not promoted, production stays "
        f"{outcome['production_after']} ({ds})",
        "rejected": f"[ml:{pipeline}] {tag}: {version} failed the quality gates ({ds})",
    }[event]
    facts = [
        ("pipeline", pipeline), ("run", outcome["run_id"]), ("logical date", ds),
        ("candidate version", version), ("decision", outcome["branch"]),
        (f"candidate {outcome['metric']}", _fmt(outcome["score"])),
        (f"production {outcome['metric']}", _fmt(outcome["champion_score"])),
        ("production before", outcome["production_before"]), ("production now", outcome["production_after"]),
        ("drift verdict", outcome["drift_verdict"]), ("why", "; ".join(outcome["reasons"])),
    ]
    if run_url:
        facts.append(("Airflow run", run_url))
    extra = _comparison_section(outcome) + _drift_section(drift or {}) + _links_section(outcome)
    return Email(subject, _wrap(event, subject, facts, extra))


def production_change_email(pipeline: str, entry: dict, run_id: str, extra: dict | None = None) -> Email:
    """Email for a promote or rollback made by hand (model operations DAG or command line)."""
    tag = EVENTS["production_changed"][0]
    subject = (f"[ml:{pipeline}] {tag} by {entry['action']}: {entry['from'] or '-'} -> {entry['to']} "
               f"(by {entry['actor']})")
    facts = [("pipeline", pipeline), ("action", entry["action"]), ("from", entry["from"]), ("to", entry["to"]),
             ("who", entry["actor"]), ("reason", entry["reason"]), ("when", entry["time"]), ("run", run_id)]
    if extra and extra.get("metrics"):
        facts.append((f"{extra['metric']} of {entry['to']}", _fmt(extra["metrics"].get(extra["metric"]))))
    return Email(subject, _wrap("production_changed", subject, facts))


def task_failure_email(pipeline: str, dag_id: str, task_id: str, run_id: str, ds: str | None,
                       error: str, try_number: int | None = None, log_url: str | None = None,
                       event: str = "task_failed") -> Email:
    """Email for a task that failed (after its retries, or at once for bad input); ``event`` is
    ``artifact_tampered`` when a model file failed its sha256 check."""
    subject = f"[ml:{pipeline}] {EVENTS[event][0]} {task_id} in {dag_id} ({ds or run_id})"
    facts = [("pipeline", pipeline), ("DAG", dag_id), ("task", task_id), ("run", run_id),
             ("logical date", ds), ("try", try_number), ("log", log_url)]
    extra = f"<h3>Error</h3><pre>{html.escape(error)}</pre>"
    return Email(subject, _wrap(event, subject, facts, extra))


def run_failure_email(pipeline: str, dag_id: str, run_id: str, ds: str | None,
                      failed_tasks: list[str], reason: str | None = None) -> Email:
    """Email for a DAG run that ended failed."""
    subject = f"[ml:{pipeline}] {EVENTS['run_failed'][0]} {dag_id} ({ds or run_id})"
    facts = [("pipeline", pipeline), ("DAG", dag_id), ("run", run_id), ("logical date", ds),
             ("failed tasks", ", ".join(failed_tasks) or "unknown"), ("reason", reason)]
    return Email(subject, _wrap("run_failed", subject, facts))


def performance_email(result: dict) -> Email:
    """Email for a labels run whose realised metric fell below the floor or the validation score."""
    breaches = result["breaches"]
    pipeline = result["pipeline"]
    versions = ", ".join(sorted({b["model_version"] for b in breaches}))
    worst = breaches[0]
    subject = (f"[ml:{pipeline}] {EVENTS['performance_drop'][0]}: {worst['metric']} {_fmt(worst['value'])} "
               f"for {versions} (labels of {result['labels_date']})")
    facts = [("pipeline", pipeline), ("labels delivered", result["labels_date"]),
             ("labelled rows", result["labelled_rows"]), ("matched to predictions", result["matched_rows"])]
    header = "".join(f"<th align='left' style='padding:2px 8px'>{h}</th>" for h in (
        "version", "scored on", "rows", worst["metric"], "validation", "floor", "status", "why"))
    rows = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(_fmt(v))}</td>" for v in (
            b["model_version"], b["scoring_date"], b["rows"], b["value"], b["validation_score"], b["floor"],
            b["status"], "; ".join(b["reasons"]))) + "</tr>"
        for b in breaches)
    return Email(subject, _wrap("performance_drop", subject, facts,
                                f"<h3>Below expectations</h3><table>{'<tr>' + header + '</tr>'}{rows}</table>"))


def prediction_drift_email(summary: dict) -> Email:
    """Email for a scoring date whose prediction distribution drifted from the training one."""
    drift = summary["prediction_drift"]
    pipeline, ds = summary["pipeline"], summary["logical_date"]
    subject = (f"[ml:{pipeline}] {EVENTS['prediction_drift'][0]}: {drift['reference_version']} on "
               f"{ds} ({drift['statistic']} {_fmt(drift['value'])})")
    facts = [("pipeline", pipeline), ("scoring date", ds), ("run", summary.get("run_id")),
             ("model version", drift["reference_version"]), ("rows scored", summary["scored"]),
             ("mean prediction", _fmt(drift.get("mean"))), ("mean at training", _fmt(drift.get("reference_mean"))),
             (drift["statistic"], _fmt(drift["value"])), ("level", drift["level"]),
             ("why", "; ".join(drift.get("reasons") or []))]
    return Email(subject, _wrap("prediction_drift", subject, facts))


def _comparison_section(outcome: dict) -> str:
    """The champion/challenger table of the dashboard, with the run's bootstrap interval when its
    workspace still holds ``evaluation.json``."""
    import json

    from include.ml import monitoring, paths

    try:
        evaluation = json.loads((paths.workspace_dir(outcome["pipeline"], outcome["run_id"])
                                 / "evaluation.json").read_text())
    except (OSError, ValueError):
        evaluation = None
    return "<h3>Champion / challenger</h3>" + monitoring.comparison_html(monitoring.comparison(outcome, evaluation))


def _links_section(outcome: dict) -> str:
    """Links to the pipeline's dashboard page and to the run's page in Airflow."""
    from include.ml import monitoring

    links = monitoring.Links.from_env()
    dashboard = links.dashboard(outcome["pipeline"])
    run = links.run(f"ml_training__{outcome['pipeline']}", outcome["run_id"])
    return (f"<p>Dashboard: <a href='{html.escape(dashboard)}'>{html.escape(dashboard)}</a><br>"
            f"Run page in the Airflow UI: <a href='{html.escape(run)}'>{html.escape(run)}</a></p>")
