"""decision.drift_policy and the answer to a decision request: what a drift hold becomes under each policy
(include/ml/decision.py, through the drift check), and what a person's answer does to production
(include/ml/approval.py) on a real three-day credit history whose third day drifted."""

from __future__ import annotations

import json
import shutil

import pytest

from include.ml import approval, monitoring, paths, steps
from include.ml.config import PipelineConfig
from include.ml.decision import drift_hold_verdict, improvement_bound
from include.ml.errors import DecisionRequestError
from include.ml.records import DecisionAnswer, DecisionRecord, EvaluationRecord, RunWorkspace


def with_policy(config: PipelineConfig, policy: str) -> PipelineConfig:
    data = config.model_dump(mode="json")
    data["decision"] = {**data["decision"], "drift_policy": policy}
    return PipelineConfig.model_validate(data)


def interval(lower: float, upper: float) -> dict:
    return {"lower": lower, "upper": upper, "confidence": 0.9}


# -- the policy, one fact each ----------------------------------------------------------------


def test_the_improvement_bound_is_the_pessimistic_end_for_scores_and_for_losses():
    assert improvement_bound(interval(0.02, 0.08), greater_is_better=True) == 0.02
    assert improvement_bound(interval(-0.3, -0.1), greater_is_better=False) == 0.1  # an rmse 0.1 lower at worst
    assert improvement_bound(None, True) is None
    assert improvement_bound(interval(float("-inf"), 0.1), True) is None


def test_new_configs_ask_a_person_and_hold_keeps_the_hold(credit_config):
    assert credit_config.decision.drift_policy == "approve"
    asked = drift_hold_verdict(credit_config, interval(0.1, 0.2))
    assert (asked.branch, asked.ask) == ("hold", True)
    assert "24 h" in asked.reason
    kept = drift_hold_verdict(with_policy(credit_config, "hold"), interval(0.1, 0.2))
    assert (kept.branch, kept.ask) == ("hold", False)


def test_promote_if_better_promotes_only_a_measurably_better_candidate(credit_config):
    config = with_policy(credit_config, "promote_if_better")
    better = drift_hold_verdict(config, interval(0.01, 0.09))
    assert (better.branch, better.ask) == ("promote", False)
    assert better.reason.startswith("PROMOTED DESPITE DRIFT") and "+0.01 roc_auc" in better.reason
    assert drift_hold_verdict(config, interval(-0.01, 0.09)).branch == "hold"  # maybe worse: held
    assert drift_hold_verdict(config, None).branch == "hold"


def test_an_unknown_policy_is_refused_with_the_choices(credit_config):
    data = credit_config.model_dump(mode="json")
    data["decision"] = {"drift_policy": "yolo"}
    with pytest.raises(ValueError, match=r"hold.*approve.*promote_if_better"):
        PipelineConfig.model_validate(data)


# -- the drift check on the real drifted day ---------------------------------------------------


@pytest.fixture
def drifted_day(in_credit_history, tmp_path) -> RunWorkspace:
    """A copy of the drifted third day's workspace (the shared history stays as it is)."""
    copy = tmp_path / "day3"
    shutil.copytree(in_credit_history.summaries[2]["workspace"], copy)
    return RunWorkspace(copy)


def set_interval(ws: RunWorkspace, lower: float, upper: float) -> None:
    """Give the day's evaluation another bootstrap interval (as a candidate better or worse would get)."""
    evaluation = ws.read(EvaluationRecord)
    gates = evaluation.gates.model_copy(update={"interval": {**evaluation.gates.interval, "lower": lower,
                                                             "upper": upper}})
    ws.write(evaluation.model_copy(update={"gates": gates}))


def test_the_drifted_day_asks_for_a_decision_under_the_default_policy(in_credit_history, drifted_day):
    decision = steps.drift_check(in_credit_history.config, drifted_day)

    assert (decision["branch"], decision["drift_policy"], decision["ask"]) == ("hold", "approve", True)
    assert in_credit_history.summaries[2]["decision_requested"] is True
    meta = steps.registry_for(in_credit_history.config).metadata(in_credit_history.summaries[2]["version"])
    assert meta["promotion_record"]["drift_policy"] == "approve"
    assert meta["promotion_record"]["decision_requested"] is True


def test_promote_if_better_on_the_drifted_day_promotes_a_better_candidate_and_holds_a_worse(
        in_credit_history, drifted_day):
    config = with_policy(in_credit_history.config, "promote_if_better")

    set_interval(drifted_day, 0.02, 0.07)
    better = steps.drift_check(config, drifted_day)
    set_interval(drifted_day, -0.06, 0.01)
    worse = steps.drift_check(config, drifted_day)

    assert (better["branch"], better["promoted_by_policy"]) == ("promote", True)
    assert better["reasons"][0].startswith("input drift against production v0002")
    assert "PROMOTED DESPITE DRIFT" in better["reasons"][-1]
    assert (worse["branch"], worse["promoted_by_policy"], worse["ask"]) == ("hold", False, False)
    assert "not measurably better" in worse["reasons"][-1]
    assert drifted_day.read(DecisionRecord).drift_policy == "promote_if_better"


# -- answers ----------------------------------------------------------------------------------


@pytest.fixture
def held(credit_history, tmp_path, monkeypatch) -> dict:
    """A private copy of the three-day history (answers change its registry): the held day's summary."""
    home = tmp_path / "home"
    shutil.copytree(credit_history.home, home)
    monkeypatch.setenv("ML_HOME", str(home))
    return credit_history.summaries[2]


def audit(config: PipelineConfig) -> list[dict]:
    return steps.registry_for(config).audit()


def test_the_request_shows_the_versions_the_comparison_and_the_drift_worst_first(credit_config, held):
    request = approval.decision_request(credit_config, held["run_id"])
    body = approval.request_markdown(request, 24)

    assert approval.request_subject(request) == "credit_default: promote candidate v0003 or keep production v0002?"
    assert "candidate **v0003**" in body and "Production is **v0002**" in body
    assert "| difference (candidate - production) | +0.0" in body and "90% interval" in body
    drifted = held["drifted_features"][0]
    table = body[body.index("worst first"):]
    assert table.index(f"| {drifted} |") < min(table.index(f"| {f} |") for f in ("age", "income") if f != drifted)
    assert "(http://localhost:8080/dags/ml_training__credit_default/runs/scheduled__2026-01-03" in body
    assert f"({monitoring.Links.from_env().dashboard('credit_default')})" in body  # the monitoring page


def test_answering_promote_switches_production_with_the_user_and_reason_in_the_audit_log(credit_config, held):
    answer = approval.apply_answer(credit_config, held["run_id"], [approval.PROMOTE], "alice", "seasonal, real",
                                   "manual__decision")

    assert answer["switched"] and answer["production_after"] == "v0003"
    assert steps.registry_for(credit_config).production() == "v0003"
    last = audit(credit_config)[-1]
    assert (last["from"], last["to"], last["actor"]) == ("v0002", "v0003", "alice via manual__decision")
    assert last["reason"].endswith("seasonal, real")
    recorded = paths.run_workspace(credit_config.name, held["run_id"]).read(DecisionAnswer)
    assert (recorded.choice, recorded.switched, recorded.production_before) == ("promote", True, "v0002")


def test_answering_keep_or_no_answer_changes_nothing_and_says_so(credit_config, held):
    before = audit(credit_config)

    kept = approval.apply_answer(credit_config, held["run_id"], [approval.KEEP], "bob", "looks like a feed bug")
    timed_out = approval.apply_answer(credit_config, held["run_id"], [approval.KEEP], None, "")

    assert audit(credit_config) == before and steps.registry_for(credit_config).production() == "v0002"
    assert (kept["choice"], kept["switched"], kept["actor"]) == ("keep", False, "bob")
    assert timed_out["timed_out"] and timed_out["actor"] == "nobody (no answer in time)"
    assert timed_out["reason"] == "no answer within 24 h: production kept"


def test_a_second_promote_does_not_switch_again(credit_config, held):
    approval.apply_answer(credit_config, held["run_id"], [approval.PROMOTE], "alice", "ok")
    again = approval.apply_answer(credit_config, held["run_id"], [approval.PROMOTE], "carol", "ok too")

    assert not again["switched"] and "already production" in again["refused"]
    assert [e["actor"] for e in audit(credit_config)].count("carol") == 0


def test_an_answer_about_a_run_that_held_nothing_is_refused(credit_config, held, credit_history):
    with pytest.raises(DecisionRequestError, match=r"has no held candidate.*'promote'"):
        approval.apply_answer(credit_config, credit_history.summaries[1]["run_id"], [approval.PROMOTE], "a", "b")
    with pytest.raises(DecisionRequestError, match="not one of"):
        approval.apply_answer(credit_config, held["run_id"], ["Ship it"], "a", "b")


def test_pending_decisions_lists_only_open_requests_of_decision_dags():
    details = [
        {"task_instance": {"dag_id": "ml_decision__credit_default", "dag_run_id": "r1", "task_id": "decide"},
         "subject": "promote?", "created_at": "2026-01-02T00:00:00Z", "response_received": False},
        {"task_instance": {"dag_id": "ml_decision__credit_default", "dag_run_id": "r0", "task_id": "decide"},
         "subject": "done", "created_at": "2026-01-01T00:00:00Z", "response_received": True},
        {"task_instance": {"dag_id": "other_dag", "dag_run_id": "x", "task_id": "t"}, "created_at": "x"},
    ]
    rows = approval.pending_decisions(details)
    assert [(r["pipeline"], r["run_id"]) for r in rows] == [("credit_default", "r1")]
    assert rows[0]["answer_url"] == "/dags/ml_decision__credit_default/runs/r1/tasks/decide/required_actions"
    assert json.dumps(rows)


# -- the emails -------------------------------------------------------------------------------


def test_the_request_email_links_to_the_required_action_and_says_when_production_is_kept(credit_config, held):
    from include.ml import alerts

    request = approval.decision_request(credit_config, held["run_id"])
    email = alerts.decision_request_email(request, "http://airflow/dags/d/runs/r/tasks/decide/required_actions",
                                          "2026-01-04T00:00+00:00")

    assert email.subject == "[ml:credit_default] DECISION NEEDED: promote v0003 or keep production v0002 (2026-01-03)"
    assert "http://airflow/dags/d/runs/r/tasks/decide/required_actions" in email.html
    assert "2026-01-04T00:00+00:00" in email.html and "Drift by feature" in email.html


def test_the_answer_emails_name_who_and_what_and_a_timeout_says_production_was_kept(credit_config, held):
    from include.ml import alerts

    promoted = approval.apply_answer(credit_config, held["run_id"], [approval.PROMOTE], "alice", "real shift", "d1")
    timed_out = approval.apply_answer(credit_config, held["run_id"], [approval.KEEP], None, "", "d2")

    assert alerts.decision_answer_email(promoted).subject == (
        "[ml:credit_default] DECISION by alice: v0003 promoted, production is v0003")
    assert alerts.decision_answer_email(timed_out).subject == (
        "[ml:credit_default] NO ANSWER: v0003 not promoted, production kept v0003")


def test_the_deadline_email_keeps_airflows_placeholders_for_the_notifier():
    from include.airflow_deadlines import DEADLINE, LOGICAL_DATE, RUN
    from include.ml import alerts

    email = alerts.deadline_email("training", "credit_default", "ml_training__credit_default", 1440, RUN,
                                  LOGICAL_DATE, DEADLINE)

    assert email.subject == ("[ml:credit_default] DEADLINE MISSED training: ml_training__credit_default not "
                             "finished 1440 min after {{ dag_run.logical_date }}")
    assert "{{ dag_run.dag_run_id }}" in email.html and "{{ deadline.deadline_time }}" in email.html
    # what the notifier renders when the deadline is missed (its context: the run and the deadline only)
    import jinja2

    context = {"dag_run": {"dag_run_id": "scheduled__2026-01-03", "logical_date": "2026-01-03T00:00:00Z"},
               "deadline": {"deadline_time": "2026-01-04T00:00:00Z"}}
    html = jinja2.Environment().from_string(email.html).render(**context)
    assert "scheduled__2026-01-03" in html and "2026-01-04T00:00:00Z" in html and "{{" not in html
