"""A person's decision on a candidate the drift check held (``decision.drift_policy: approve``): what the
request shows (:func:`decision_request`, :func:`request_markdown`), what an answer does
(:func:`apply_answer`: through :mod:`include.ml.model_ops`' compare-and-swap, the answering user as the
actor and their comment as the reason in the audit log), and which requests are still open
(:func:`pending_decisions`, from Airflow's ``hitlDetails`` list).

The asking and the waiting are Airflow's (the ``ml_decision__<pipeline>`` DAG); this module is Airflow-free.
"""

from __future__ import annotations

import datetime as dt
import re

from include.ml import monitoring, paths
from include.ml.config import PipelineConfig, training_dag_id
from include.ml.errors import DecisionRequestError, RegistryError
from include.ml.model_ops import apply_change, plan_change
from include.ml.presentation import number
from include.ml.records import DecisionAnswer, EvaluationRecord, OutcomeRecord, RunWorkspace

PROMOTE = "Promote candidate"  # the two options of the request, as Airflow shows them
KEEP = "Keep production"
OPTIONS: tuple[str, str] = (PROMOTE, KEEP)
CHOICES = {PROMOTE: "promote", KEEP: "keep"}
REASON_PARAM = "reason"  # the request's one form field: why (goes into the audit log)
DECISION_TASK = "decide"  # the task of the decision DAG that asks
DECISION_DAG_PREFIX = "ml_decision__"


def decision_dag_id(pipeline: str) -> str:
    """The id of the DAG that asks for decisions on ``pipeline``'s held candidates."""
    return f"{DECISION_DAG_PREFIX}{pipeline}"


def _held_run(config: PipelineConfig, run_id: str) -> tuple[RunWorkspace, OutcomeRecord]:
    try:
        ws = paths.run_workspace(config.name, run_id)
        outcome = ws.read_or_none(OutcomeRecord)
    except ValueError as error:  # an unsafe run id, or a damaged record
        raise DecisionRequestError(f"decision on pipeline {config.name!r}: run {run_id!r} cannot be read "
                                   f"({error}); answer 'Keep production' and promote by hand if needed") from error
    if outcome is None or outcome.branch != "hold":
        found = "no outcome" if outcome is None else f"its outcome is {outcome.branch!r}"
        raise DecisionRequestError(
            f"decision on pipeline {config.name!r}: run {run_id!r} has no held candidate ({found} in {ws.folder}); "
            f"the request names the training run whose hold asked for it")
    return ws, outcome


def decision_request(config: PipelineConfig, run_id: str) -> dict:
    """What a person needs to decide on the candidate held by training run ``run_id``: the version pair
    (the candidate, and production now), why it was held, the champion/challenger comparison with its
    interval, the drift report and the links to the run and the monitoring page.

    Raises :class:`DecisionRequestError` when the run's workspace holds no held candidate."""
    from include.ml.steps import registry_for

    ws, outcome = _held_run(config, run_id)
    try:
        evaluation = ws.read_or_none(EvaluationRecord)
    except ValueError:
        evaluation = None
    links = monitoring.Links.from_env()
    return {
        "pipeline": config.name, "run_id": run_id, "logical_date": outcome.logical_date, "version": outcome.version,
        "production": registry_for(config).production(), "production_at_hold": outcome.production_before,
        "metric": outcome.metric, "reasons": outcome.reasons,
        "comparison": monitoring.comparison(outcome.to_dict(), None if evaluation is None else evaluation.to_dict()),
        "drift": ws.read_json_or_none(ws.DRIFT),
        "links": {"dashboard": links.dashboard(config.name), "run": links.run(training_dag_id(config.name), run_id)},
    }


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")  # what can start emphasis, code, a link, markup or a cell


def _md(value: object) -> str:
    """``value`` as shown, with Markdown's special characters escaped (feature names come from data)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", number(value))


def request_subject(request: dict) -> str:
    """The request's headline: the two choices with their versions."""
    return (f"{request['pipeline']}: promote candidate {request['version']} or keep production "
            f"{request['production'] or '(none)'}?")


def request_markdown(request: dict, timeout_hours: float) -> str:
    """The request's body (Markdown, as Airflow's Required Actions page renders it): the version pair,
    the comparison with its interval, the drift table worst first, the links and what no answer does."""
    from include.ml.drift import DriftReport

    c = request["comparison"]
    metric = _md(c["metric"])
    interval = c.get("interval") or {}
    between = (f"{interval.get('confidence', 0):.0%} interval {number(interval.get('lower'), sign=True)} to "
               f"{number(interval.get('upper'), sign=True)}" if interval else "no interval")
    lines = [
        f"The drift check held candidate **{_md(request['version'])}** (run `{request['run_id']}`, batch of "
        f"{_md(request['logical_date'])}). Production is **{_md(request['production'] or 'none')}**"
        + ("" if request["production"] == request["production_at_hold"]
           else f" (it was {_md(request['production_at_hold'])} when the candidate was held)") + ".",
        "",
        f"**{_md(PROMOTE)}** switches production to {_md(request['version'])}; **{_md(KEEP)}** changes nothing. "
        f"Either way, say why in *{REASON_PARAM}*: it goes into the audit log with your name. "
        f"With no answer within {timeout_hours:g} h production is kept.",
        "",
        "| champion / challenger | " + metric + " |", "|---|---|",
        f"| candidate {_md(c['candidate_version'])} | {_md(c['candidate_score'])} |",
        f"| production {_md(c['champion_version'])} | {_md(c['champion_score'])} |",
        f"| difference (candidate - production) | {_md(number(c['difference'], sign=True))} ({_md(between)}"
        f"{', ' + _md(c['holdout_rows']) + ' holdout rows' if c.get('holdout_rows') else ''}) |",
        "",
        "Why held: " + "; ".join(_md(r) for r in request["reasons"]),
    ]
    drift = request.get("drift") or {}
    if drift.get("features"):
        report = DriftReport.from_dict(drift)
        lines += ["", f"**Drift by feature, worst first** (verdict {_md(report.verdict)})", "",
                  "| feature | type | level | statistics | why |", "|---|---|---|---|---|"]
        for name, result in report.ordered_features():
            stats = ", ".join(f"{_md(k)} {_md(v)}" for k, v in sorted((result.get("statistics") or {}).items()))
            lines.append(f"| {_md(name)} | {_md(result.get('type'))} | {_md(result.get('level'))} | {stats} | "
                         f"{'; '.join(_md(r) for r in result.get('reasons') or [])} |")
    links = request["links"]
    lines += ["", f"[The held run in Airflow]({links['run']}) · [The monitoring page]({links['dashboard']})"]
    return "\n".join(lines)


def response_timeout_minutes(conf: dict, config: PipelineConfig) -> float:
    """How long a decision waits: a run's conf ``response_timeout_minutes`` (a person starting one by hand
    may want less), else ``decision.response_timeout_hours``. Raises :class:`DecisionRequestError` for a
    value that is not a positive number of minutes."""
    value = conf.get("response_timeout_minutes")
    if value is None:
        return config.decision.response_timeout_hours * 60
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60 * 24 * 30:
        raise DecisionRequestError(f"decision on pipeline {config.name!r}: conf response_timeout_minutes {value!r} "
                                   "is not a number of minutes above 0 and at most 43200 (30 days); leave it out "
                                   "to wait decision.response_timeout_hours "
                                   f"({config.decision.response_timeout_hours:g})")
    return float(value)


def apply_answer(config: PipelineConfig, run_id: str, chosen: list[str], user: str | None, reason: str,
                 decision_run_id: str | None = None) -> dict:
    """Carry out the answer to the request about training run ``run_id``'s held candidate: ``chosen`` is
    the chosen option (:data:`OPTIONS`), ``user`` who answered (None: nobody did before the timeout, so
    production is kept). A promote goes through :func:`plan_change` / :func:`apply_change` (compare-and-
    swap) with ``"<user> via <decision run>"`` as actor and the reason in the audit log; when production
    moved since, or already is the candidate, nothing switches and ``refused`` says why. Writes
    :class:`DecisionAnswer` into the held run's workspace and returns its dict.

    Raises :class:`DecisionRequestError` for an unknown option or a run without a held candidate."""
    from include.ml.steps import registry_for

    ws, outcome = _held_run(config, run_id)
    if len(chosen) != 1 or chosen[0] not in CHOICES:
        raise DecisionRequestError(f"decision on {outcome.version} of pipeline {config.name!r}: the answer "
                                   f"{chosen!r} is not one of {list(OPTIONS)}")
    timed_out = user is None
    choice = "keep" if timed_out else CHOICES[chosen[0]]
    actor = f"{user} via {decision_run_id}" if user and decision_run_id else user or "nobody (no answer in time)"
    reason = (reason or "").strip() or (
        f"no answer within {config.decision.response_timeout_hours:g} h: production kept" if timed_out
        else f"{chosen[0]} (no reason given)")
    registry = registry_for(config)
    before = registry.production()
    switched, refused = False, None
    if choice == "promote":
        try:
            plan = plan_change(config, "promote", outcome.version,
                               f"decision on held run {run_id}: {reason}", actor)
            apply_change(config, plan)
            switched = True
        except RegistryError as error:  # production moved since, or already is the candidate
            refused = str(error)
    answer = ws.write(DecisionAnswer(
        pipeline=config.name, run_id=run_id, version=outcome.version, choice=choice, timed_out=timed_out,
        user=user, actor=actor, reason=reason, switched=switched, refused=refused, production_before=before,
        production_after=registry.production(), decision_run_id=decision_run_id,
        answered_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")))
    return answer.to_dict()


def pending_decisions(hitl_details: list[dict], links: monitoring.Links | None = None) -> list[dict]:
    """The open decision requests among Airflow's Required Actions (the ``hitl_details`` of ``GET
    /api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false``), oldest first: pipeline, the
    decision DAG and run, its subject, when it was asked, and the link to answer it in the UI (relative
    to the server unless ``links`` says otherwise)."""
    links = links or monitoring.Links()
    rows = []
    for detail in hitl_details:
        ti = detail.get("task_instance") or {}
        dag_id = str(ti.get("dag_id") or "")
        if not dag_id.startswith(DECISION_DAG_PREFIX) or detail.get("response_received"):
            continue
        run_id, task_id = str(ti.get("dag_run_id") or ""), str(ti.get("task_id") or "")
        rows.append({
            "pipeline": dag_id.removeprefix(DECISION_DAG_PREFIX), "dag_id": dag_id, "run_id": run_id,
            "subject": detail.get("subject"), "created_at": detail.get("created_at"),
            "answer_url": f"{links.task_log(dag_id, run_id, task_id)}/required_actions",
        })
    return sorted(rows, key=lambda r: r["created_at"] or "")
