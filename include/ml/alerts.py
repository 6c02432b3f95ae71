"""The pipeline's alert emails: subject and HTML body for each event, from plain dicts; the body is
``templates/email.html.j2`` (autoescaped), with the dashboard's comparison and drift tables.

Every email names the pipeline, the run and the logical date, says what happened and what to
do, and points to its section of RUNBOOK.md. Sending is the orchestrator's job (Airflow's
SmtpNotifier); this module only writes the words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from include.ml import presentation
from include.ml.presentation import number

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
    "promoted_despite_drift": (
        "PROMOTED DESPITE DRIFT",
        "alert-promoted-despite-drift",
        "The batch drifted, and the pipeline's drift_policy promote_if_better promoted the candidate because it "
        "is measurably better than the old model on this batch's holdout. Check the drifted features below: if "
        "the drift is an upstream bug rather than a real change, roll back (see the runbook).",
    ),
    "decision_needed": (
        "DECISION NEEDED",
        "alert-decision-needed",
        "Open the Required Action linked below in Airflow, read the comparison and the drift table, and choose "
        "<em>Promote candidate</em> or <em>Keep production</em> with a reason. With no answer before the "
        "deadline below, production is kept.",
    ),
    "decision_made": (
        "DECISION",
        "alert-decision-made",
        "Nothing, if the answer is yours or expected. Every answer is in the audit log "
        "(<code>python -m include.ml models history</code>); a promotion can be rolled back (see the runbook).",
    ),
    "decision_timed_out": (
        "NO ANSWER",
        "alert-no-answer-production-kept",
        "Nobody answered the decision request in time, so production was kept. The candidate stays registered: "
        "promote it by hand through the ml_model_ops DAG if it should have been promoted (see the runbook).",
    ),
    "deadline_training": (
        "DEADLINE MISSED training",
        "alert-training-deadline-missed",
        "The training run has not finished in time: its batch may be late or a task stuck. Open the run, see "
        "which task is waiting or retrying, and chase the delivery or clear the task (see the runbook).",
    ),
    "deadline_scoring": (
        "DEADLINE MISSED scoring",
        "alert-scoring-deadline-missed",
        "The scoring run has not written its predictions in time: its partitions may be late or a task stuck. "
        "Open the run and see which task is waiting or retrying; consumers of the predictions are waiting.",
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
    "batch_late": (
        "BATCH LATE",
        "alert-batch-late",
        "The batch of this date did not land in time, so nothing was trained and production is unchanged. Ask "
        "the upstream owner when it comes; once the file is in the landing folder, clear the task (see the runbook).",
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
    "estimated_performance_drop": (
        "ESTIMATED PERFORMANCE DROP",
        "alert-estimated-performance-drop",
        "Before any label: the model's calibrated probabilities on this scoring date lead one to expect a metric "
        "below the floor or below validation by more than the allowed margin. Look at the input and prediction "
        "drift of the same date; when labels arrive, compare the realised metric with the estimate (see the "
        "runbook).",
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


def _email(event: str, subject: str, facts: list[tuple[str, object]], **sections: object) -> Email:
    """The email of ``event``: the subject as headline, the facts, what to do, the optional
    ``sections`` of ``templates/email.html.j2`` and the runbook link."""
    _, anchor, todo = EVENTS[event]
    body = presentation.render("email.html.j2", headline=subject, facts=facts,
                               todo=presentation.Markup(todo),  # advice written in EVENTS above, not data
                               runbook=runbook_link(anchor), **sections)
    return Email(subject, str(body))


def outcome_email(outcome: dict, drift: dict | None = None, run_url: str | None = None) -> Email:
    """Email for a finished decision (``outcome['branch']`` is promote, hold or reject)."""
    event = {"promote": "promoted", "hold": "held", "reject": "rejected"}[outcome["branch"]]
    tag = EVENTS[event][0]
    pipeline, ds, version = outcome["pipeline"], outcome["logical_date"], outcome["version"]
    if event == "promoted" and not outcome.get("switched", True):
        event, tag = "rerun", EVENTS["rerun"][0]
    elif event == "promoted" and outcome.get("promoted_by_policy"):
        event, tag = "promoted_despite_drift", EVENTS["promoted_despite_drift"][0]
    subject = {
        "promoted": f"[ml:{pipeline}] {tag}: {version} is now in production ({ds})",
        "promoted_despite_drift": f"[ml:{pipeline}] {tag}: {version} is now in production although the batch "
        f"drifted ({ds}, drift_policy promote_if_better)",
        "rerun": f"[ml:{pipeline}] {tag}: {version} was already registered for {ds}; production stays "
        f"{outcome['production_after']}",
        "held": f"[ml:{pipeline}] {tag}: {version} not promoted, production stays "
        f"{outcome['production_after']} ({ds})",
        "rejected": f"[ml:{pipeline}] {tag}: {version} failed the quality gates ({ds})",
    }[event]
    facts = [
        ("pipeline", pipeline), ("run", outcome["run_id"]), ("logical date", ds),
        ("candidate version", version), ("decision", outcome["branch"]),
        (f"candidate {outcome['metric']}", outcome["score"]),
        (f"production {outcome['metric']}", outcome["champion_score"]),
        ("production before", outcome["production_before"]), ("production now", outcome["production_after"]),
        ("drift verdict", outcome["drift_verdict"]), ("why", "; ".join(outcome["reasons"])),
    ]
    if outcome.get("drift_policy"):
        facts.append(("drift policy", outcome["drift_policy"]))
    if outcome.get("decision_requested"):
        facts.append(("a person decides", "a decision request in Airflow's Required Actions follows by email"))
    if run_url:
        facts.append(("Airflow run", run_url))
    return _email(event, subject, facts, comparison=_comparison(outcome), drift_report=_drift_report(drift),
                  links=_links(outcome))


def decision_request_email(request: dict, action_url: str, timeout_at: str | None) -> Email:
    """Email asking the recipients to answer the decision request ``request`` (:func:`include.ml.approval.
    decision_request`) at ``action_url`` (its Required Action in Airflow) before ``timeout_at``."""
    tag = EVENTS["decision_needed"][0]
    subject = (f"[ml:{request['pipeline']}] {tag}: promote {request['version']} or keep production "
               f"{request['production'] or '-'} ({request['logical_date']})")
    facts = [("pipeline", request["pipeline"]), ("held run", request["run_id"]),
             ("logical date", request["logical_date"]), ("candidate", request["version"]),
             ("production", request["production"]), ("why held", "; ".join(request["reasons"])),
             ("answer here", action_url), ("no answer by", timeout_at or "no time limit")]
    return _email("decision_needed", subject, facts, comparison=request["comparison"],
                  drift_report=_drift_report(request.get("drift")), links=request["links"])


def decision_answer_email(answer: dict) -> Email:
    """Email of the answer to a decision request (:class:`include.ml.records.DecisionAnswer` as a dict)."""
    pipeline, version = answer["pipeline"], answer["version"]
    if answer["timed_out"]:
        event = "decision_timed_out"
        subject = (f"[ml:{pipeline}] {EVENTS[event][0]}: {version} not promoted, production kept "
                   f"{answer['production_after'] or '-'}")
    else:
        event = "decision_made"
        did = (f"{version} promoted" if answer["switched"] else
               f"promote of {version} refused" if answer["choice"] == "promote" else f"{version} not promoted")
        who = answer.get("user") or answer["actor"]
        now = answer["production_after"] or "-"
        subject = f"[ml:{pipeline}] {EVENTS[event][0]} by {who}: {did}, production is {now}"
    facts = [("pipeline", pipeline), ("held run", answer["run_id"]), ("candidate", version),
             ("answer", answer["choice"]), ("who", answer["actor"]), ("reason", answer["reason"]),
             ("production before", answer["production_before"]), ("production now", answer["production_after"]),
             ("switched", answer["switched"]), ("refused because", answer.get("refused")),
             ("decision run", answer.get("decision_run_id"))]
    return _email(event, subject, facts)


def deadline_email(kind: str, pipeline: str, dag_id: str, minutes: float, run: str, logical_date: str,
                   deadline: str) -> Email:
    """Email for a missed deadline of a training or scoring run (``kind``). ``run``, ``logical_date`` and
    ``deadline`` are text put in as given: the deadline callback passes Jinja placeholders that Airflow's
    notifier fills in when the deadline is missed."""
    event = f"deadline_{kind}"
    subject = f"[ml:{pipeline}] {EVENTS[event][0]}: {dag_id} not finished {minutes:g} min after {logical_date}"
    facts = [("pipeline", pipeline), ("DAG", dag_id), ("run", run), ("logical date", logical_date),
             ("deadline", deadline), ("allowed", f"{minutes:g} minutes after the logical date")]
    return _email(event, subject, facts)


def production_change_email(pipeline: str, entry: dict, run_id: str, extra: dict | None = None) -> Email:
    """Email for a promote or rollback made by hand (model operations DAG or command line)."""
    tag = EVENTS["production_changed"][0]
    subject = (f"[ml:{pipeline}] {tag} by {entry['action']}: {entry['from'] or '-'} -> {entry['to']} "
               f"(by {entry['actor']})")
    facts = [("pipeline", pipeline), ("action", entry["action"]), ("from", entry["from"]), ("to", entry["to"]),
             ("who", entry["actor"]), ("reason", entry["reason"]), ("when", entry["time"]), ("run", run_id)]
    if extra and extra.get("metrics"):
        facts.append((f"{extra['metric']} of {entry['to']}", extra["metrics"].get(extra["metric"])))
    return _email("production_changed", subject, facts)


def task_failure_email(pipeline: str, dag_id: str, task_id: str, run_id: str, ds: str | None,
                       error: str, try_number: int | None = None, log_url: str | None = None,
                       event: str = "task_failed") -> Email:
    """Email for a task that failed (after its retries, or at once for bad input); ``event`` is
    ``artifact_tampered`` when a model file failed its sha256 check, ``batch_late`` when the wait for
    the batch ran out."""
    subject = f"[ml:{pipeline}] {EVENTS[event][0]} {task_id} in {dag_id} ({ds or run_id})"
    facts = [("pipeline", pipeline), ("DAG", dag_id), ("task", task_id), ("run", run_id),
             ("logical date", ds), ("try", try_number), ("log", log_url)]
    return _email(event, subject, facts, error=error)


def run_failure_email(pipeline: str, dag_id: str, run_id: str, ds: str | None,
                      failed_tasks: list[str], reason: str | None = None) -> Email:
    """Email for a DAG run that ended failed."""
    subject = f"[ml:{pipeline}] {EVENTS['run_failed'][0]} {dag_id} ({ds or run_id})"
    facts = [("pipeline", pipeline), ("DAG", dag_id), ("run", run_id), ("logical date", ds),
             ("failed tasks", ", ".join(failed_tasks) or "unknown"), ("reason", reason)]
    return _email("run_failed", subject, facts)


def performance_email(result: dict) -> Email:
    """Email for a labels run whose realised metric fell below the floor or the validation score."""
    breaches = result["breaches"]
    pipeline = result["pipeline"]
    versions = ", ".join(sorted({b["model_version"] for b in breaches}))
    worst = breaches[0]
    subject = (f"[ml:{pipeline}] {EVENTS['performance_drop'][0]}: {worst['metric']} {number(worst['value'])} "
               f"for {versions} (labels of {result['labels_date']})")
    facts = [("pipeline", pipeline), ("labels delivered", result["labels_date"]),
             ("labelled rows", result["labelled_rows"]), ("matched to predictions", result["matched_rows"])]
    return _email("performance_drop", subject, facts, breaches=breaches, metric=worst["metric"])


def estimated_performance_email(summary: dict) -> Email:
    """Email for a scoring date whose estimated metric (``estimated_performance`` of
    :func:`include.ml.scoring.summarise`) is below the floor or the validation score."""
    pipeline, ds = summary["pipeline"], summary["logical_date"]
    breaches = estimate_breaches(summary)
    worst = breaches[0]
    subject = (f"[ml:{pipeline}] {EVENTS['estimated_performance_drop'][0]}: estimated {worst['metric']} "
               f"{number(worst['value'])} for {', '.join(b['model_version'] for b in breaches)} on {ds}")
    facts = [("pipeline", pipeline), ("scoring date", ds), ("run", summary.get("run_id")),
             ("rows scored", summary["scored"]),
             (f"{worst['confidence']:.0%} interval for {worst['rows']} rows",
              f"{number(worst['lower'])} to {number(worst['upper'])}"),
             ("calibration", worst["method"])]
    return _email("estimated_performance_drop", subject, facts, breaches=breaches,
                  metric=f"estimated {worst['metric']}")


def estimate_breaches(summary: dict) -> list[dict]:
    """The versions of a scoring summary whose estimate is below the floor or the validation score, each
    with the scoring date (what the breaches table shows)."""
    from include.ml.performance import BREACHES

    found = (summary.get("estimated_performance") or {}).values()
    return [{**e, "scoring_date": summary["logical_date"]} for e in found if e.get("status") in BREACHES]


def prediction_drift_email(summary: dict) -> Email:
    """Email for a scoring date whose prediction distribution drifted from the training one."""
    drift = summary["prediction_drift"]
    pipeline, ds = summary["pipeline"], summary["logical_date"]
    subject = (f"[ml:{pipeline}] {EVENTS['prediction_drift'][0]}: {drift['reference_version']} on "
               f"{ds} ({drift['statistic']} {number(drift['value'])})")
    facts = [("pipeline", pipeline), ("scoring date", ds), ("run", summary.get("run_id")),
             ("model version", drift["reference_version"]), ("rows scored", summary["scored"]),
             ("mean prediction", drift.get("mean")), ("mean at training", drift.get("reference_mean")),
             (drift["statistic"], drift["value"]), ("level", drift["level"]),
             ("why", "; ".join(drift.get("reasons") or []))]
    return _email("prediction_drift", subject, facts)


def _comparison(outcome: dict) -> dict:
    """The dashboard's champion/challenger comparison of the run, with its bootstrap interval when
    the run's workspace still holds its evaluation record."""
    from include.ml import monitoring, paths
    from include.ml.records import EvaluationRecord

    try:
        evaluation = paths.run_workspace(outcome["pipeline"], outcome["run_id"]).read_or_none(EvaluationRecord)
    except ValueError:  # a damaged record: the email goes out without the interval
        evaluation = None
    return monitoring.comparison(outcome, None if evaluation is None else evaluation.to_dict())


def _drift_report(drift: dict | None):
    """The run's DriftReport for the drift table, or None when the run compared with no reference."""
    if not drift or not drift.get("features"):
        return None
    from include.ml.drift import DriftReport

    return DriftReport.from_dict(drift)


def _links(outcome: dict) -> dict:
    """The pipeline's dashboard page and the run's page in the Airflow UI."""
    from include.ml import monitoring
    from include.ml.config import training_dag_id

    links = monitoring.Links.from_env()
    return {"dashboard": links.dashboard(outcome["pipeline"]),
            "run": links.run(training_dag_id(outcome["pipeline"]), outcome["run_id"])}
