"""A person's decision on a held candidate, against a real scheduler, DAG processor, triggerer, API
server and Celery worker (the production shape of tests/production/cluster.py): a drift day's hold
asks in Required Actions (an Asset event starts ml_decision__credit_default, whose request is emailed
with its link); "Keep production" changes nothing; "Promote candidate" through the REST API (the
RUNBOOK's command) switches production with the user in the audit log and a production-model Asset
event, and a second answer gets 409; with no answer the scheduler's timeout keeps production and the
email says so."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse

import pytest

from include.airflow_batch_wait import WAIT_TASK
from include.ml import approval, paths
from include.ml.config import get_pipeline
from include.ml.monitoring import DASHBOARD_PREFIX
from include.ml.records import DecisionAnswer, OutcomeRecord
from include.ml.simulate import write_batches
from include.ml.steps import registry_for, run_steps
from tests.conftest import ROOT, body_of
from tests.production import test_production_shape as shape

# the production-shape fixtures: a fresh PostgreSQL database, a Celery queue of its own, the cluster
database, celery_queue, cluster = shape.database, shape.celery_queue, shape.cluster

pytestmark = pytest.mark.production

RUNBOOK_API = re.compile(r"^```bash airflow-api\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _decide_ti(cluster, dag_id: str, run_id: str) -> dict | None:
    return next((t for t in cluster.task_instances(dag_id, run_id) if t["task_id"] == approval.DECISION_TASK), None)


def _awaiting(cluster, dag_id: str, run_id: str) -> bool:
    ti = _decide_ti(cluster, dag_id, run_id)
    return bool(ti and ti["state"] == "awaiting_input")


def _hitl_path(dag_id: str, run_id: str) -> str:
    quoted = urllib.parse.quote(run_id, safe="")
    return f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{approval.DECISION_TASK}/-1/hitlDetails"


def _answer(cluster, dag_id: str, run_id: str, option: str, reason: str) -> dict:
    return cluster.request("PATCH", _hitl_path(dag_id, run_id),
                           {"chosen_options": [option], "params_input": {approval.REASON_PARAM: reason}})


def _succeeded(cluster, dag_id: str, run_id: str) -> str | None:
    return shape._run_state(cluster, dag_id, run_id)


def test_a_drift_hold_asks_in_required_actions_and_the_answers_go_through_the_registry(cluster, smtp_inbox):
    config = get_pipeline("credit_default")
    training, decision = config.dag_id, approval.decision_dag_id(config.name)
    registry = registry_for(config)
    # Two normal days trained here (the library, as the DAG runs it), the drifted third one by the
    # cluster: its logical date is today's, the date the @daily schedule would pick on unpausing.
    today = dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=2)
    write_batches(config, first, 3, drift_from=today)
    for offset in (0, 1):
        day = (first + dt.timedelta(days=offset)).isoformat()
        run_steps(config, f"scheduled__{day}T00:00:00+00:00", day)
    before = registry.production()  # v0001 or v0002: the second normal day may not beat the first
    assert before
    smtp_inbox.clear()

    for dag_id in (training, decision):
        cluster.wait_until(f"{dag_id} parsed and served by the API",
                           lambda d=dag_id: cluster.request("GET", f"/api/v2/dags/{d}")["dag_id"])
    cluster.request("PATCH", f"/api/v2/dags/{decision}", {"is_paused": False})  # Asset events queue unpaused DAGs only
    held = cluster.request("POST", f"/api/v2/dags/{training}/dagRuns",
                           {"logical_date": f"{today.isoformat()}T00:00:00Z", "conf": {}})
    cluster.request("PATCH", f"/api/v2/dags/{training}", {"is_paused": False})
    cluster.wait_until("the drifted training run", lambda: _succeeded(cluster, training, held["dag_run_id"]))
    states = {t["task_id"]: t["state"] for t in cluster.task_instances(training, held["dag_run_id"])}
    assert (states["hold"], states["promote"], states["report"]) == ("success", "skipped", "success")
    candidate = paths.run_workspace(config.name, held["dag_run_id"]).read(OutcomeRecord).version

    # The hold's Asset event started a decision run, whose request waits for a person: the training
    # run has finished (no deadline counts on it), the request is in Required Actions and emailed.
    asked = cluster.wait_until("the Asset-triggered decision run", lambda: next(
        (r for r in cluster.dag_runs(decision) if r["run_type"] == "asset_triggered"), None))
    cluster.wait_until("the request waiting for an answer", lambda: _awaiting(cluster, decision, asked["dag_run_id"]))
    pending = cluster.request("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false")["hitl_details"]
    (row,) = [r for r in approval.pending_decisions(pending) if r["run_id"] == asked["dag_run_id"]]
    assert row["subject"] == f"credit_default: promote candidate {candidate} or keep production {before}?"
    # the ML models page lists it, with the link that answers it
    page = cluster.request("GET", f"{DASHBOARD_PREFIX}/api/pipelines/{config.name}")
    assert [p["run_id"] for p in page["pending_decisions"]] == [row["run_id"]]
    assert page["pending_decisions"][0]["answer_url"].endswith(row["answer_url"])
    (detail,) = [d for d in pending if d["task_instance"]["dag_run_id"] == asked["dag_run_id"]]
    assert detail["options"] == list(approval.OPTIONS) and detail["defaults"] == [approval.KEEP]
    assert "| champion / challenger | roc\\_auc |" in detail["body"] and "worst first" in detail["body"]
    request_email = smtp_inbox.wait_for(f"DECISION NEEDED: promote {candidate} or keep production {before}", timeout=60)
    link = approval.pending_decisions(pending)[0]["answer_url"]
    assert f"{cluster.location.api_url}{link}".replace("%3A", ":") in body_of(request_email).replace("%3A", ":") \
        or "/required_actions" in body_of(request_email)

    # "Keep production" on a second request about the same run (started by hand): nothing changes.
    audit_before = registry.audit()
    kept = cluster.request("POST", f"/api/v2/dags/{decision}/dagRuns",
                           {"logical_date": None, "conf": {"run_id": held["dag_run_id"]}})
    cluster.wait_until("the manual request waiting", lambda: _awaiting(cluster, decision, kept["dag_run_id"]))
    _answer(cluster, decision, kept["dag_run_id"], approval.KEEP, "looks like a feed change, wait a day")
    cluster.wait_until("the keep answer applied", lambda: _succeeded(cluster, decision, kept["dag_run_id"]))
    assert registry.production() == before and registry.audit() == audit_before
    smtp_inbox.wait_for(f"DECISION by admin: {candidate} not promoted, production is {before}", timeout=60)

    # "Promote candidate" through the RUNBOOK's REST command, as a click would send it.
    (block,) = RUNBOOK_API.findall((ROOT / "RUNBOOK.md").read_text())
    env = {**os.environ, "AIRFLOW_URL": cluster.location.api_url, "TOKEN": cluster.token(), "DAG_ID": decision,
           "RUN_ID": urllib.parse.quote(asked["dag_run_id"], safe="")}
    done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{block}"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(urllib.error.HTTPError) as second:  # a second answer to the same request
        _answer(cluster, decision, asked["dag_run_id"], approval.KEEP, "too late")
    assert second.value.code == 409
    cluster.wait_until("the promote answer applied", lambda: _succeeded(cluster, decision, asked["dag_run_id"]))
    assert registry.production() == candidate
    last = registry.audit()[-1]
    assert (last["action"], last["from"], last["to"]) == ("promote", before, candidate)
    assert last["actor"] == f"admin via {asked['dag_run_id']}"
    assert last["reason"].endswith("seasonal shift, candidate better")
    smtp_inbox.wait_for(f"DECISION by admin: {candidate} promoted, production is {candidate}", timeout=60)
    events = cluster.request("GET", f"/api/v2/assets/events?source_dag_id={decision}")["asset_events"]
    (event,) = [e for e in events if e["source_run_id"] == asked["dag_run_id"]]
    assert (event["name"], event["extra"]["version"], event["extra"]["actor"]) == (
        "ml_production_model__credit_default", candidate, f"admin via {asked['dag_run_id']}")

    # No answer: the scheduler's timeout answers "Keep production" with no user.
    waited = cluster.request("POST", f"/api/v2/dags/{decision}/dagRuns", {
        "logical_date": None, "conf": {"run_id": held["dag_run_id"], "response_timeout_minutes": 0.1}})
    cluster.wait_until("the timed-out request applied", lambda: _succeeded(cluster, decision, waited["dag_run_id"]))
    assert registry.production() == candidate and registry.audit()[-1] == last
    answer = paths.run_workspace(config.name, held["dag_run_id"]).read(DecisionAnswer)
    assert (answer.timed_out, answer.choice, answer.switched) == (True, "keep", False)
    smtp_inbox.wait_for(f"NO ANSWER: {candidate} not promoted, production kept {candidate}", timeout=60)


def test_a_training_run_still_waiting_for_its_batch_past_its_deadline_emails_once(cluster, smtp_inbox):
    config = get_pipeline("credit_default")
    minutes = config.deadlines.training_minutes
    assert minutes, "the shipped credit_default config has a training deadline"
    # A date whose batch never lands, its deadline (logical date + training_minutes) five minutes ago.
    logical = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes + 5)).replace(second=0, microsecond=0)
    smtp_inbox.clear()
    cluster.wait_until(f"{config.dag_id} parsed", lambda: cluster.request("GET", f"/api/v2/dags/{config.dag_id}"))
    late = cluster.request("POST", f"/api/v2/dags/{config.dag_id}/dagRuns",
                           {"logical_date": logical.isoformat().replace("+00:00", "Z"), "conf": {}})
    cluster.request("PATCH", f"/api/v2/dags/{config.dag_id}", {"is_paused": False})

    alert = smtp_inbox.wait_for("DEADLINE MISSED training", timeout=180)
    assert alert["Subject"].startswith(f"[ml:credit_default] DEADLINE MISSED training: {config.dag_id} not "
                                       f"finished {minutes:g} min after {logical.date().isoformat()}T")
    assert late["dag_run_id"] in body_of(alert)
    cluster.wait_until("the run waiting for its batch (deferred, no worker slot)", lambda: {
        t["task_id"]: t["state"] for t in cluster.task_instances(config.dag_id, late["dag_run_id"])
    }.get(WAIT_TASK) == "deferred")
    run = next(r for r in cluster.dag_runs(config.dag_id) if r["dag_run_id"] == late["dag_run_id"])
    assert run["state"] == "running"
    time.sleep(30)  # several scheduler loops: a missed deadline is handled once
    assert sum("DEADLINE MISSED training" in s for s in smtp_inbox.subjects()) == 1
