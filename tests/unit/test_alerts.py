"""Alert emails: the subject says pipeline, event and date; the body says what happened, what to do and
where the runbook is, with anything that came from data or errors escaped."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from include.ml import alerts
from include.ml.config import DriftConfig, FeatureSpec
from include.ml.drift import ReferenceProfile, drift_report


def outcome(branch: str, **changes) -> dict:
    base = {
        "pipeline": "credit_default", "run_id": "scheduled__2026-01-03T00:00:00+00:00",
        "logical_date": "2026-01-03", "branch": branch, "version": "v0003",
        "production_before": "v0002", "production_after": "v0003" if branch == "promote" else "v0002",
        "metric": "roc_auc", "score": 0.812345, "champion_score": 0.8, "reasons": ["quality gates passed"],
        "drift_verdict": "none", "drifted_features": [],
    }
    return {**base, **changes}


def drift_of(batch: dict, reference: dict) -> dict:
    """drift.json of a batch against a reference: a real DriftReport, as a dict."""
    features = [FeatureSpec(name=n, type="categorical" if isinstance(v[0], str) else "numeric")
                for n, v in reference.items()]
    profile = ReferenceProfile().fit(pd.DataFrame(reference), features)
    report = drift_report(profile, pd.DataFrame(batch), DriftConfig(critical_features=["income"]))
    report.reference_version = "v0002"
    return json.loads(json.dumps(report.to_dict()))


def spread(n: int, shift: float = 0.0) -> list[float]:
    return [shift + (i - n / 2) / (n / 4) for i in range(n)]  # uniform on [-2, 2), std about 1.15


@pytest.fixture(scope="module")
def drift() -> dict:
    """income drifted (0.43 std), channel severe (a new level), age unchanged."""
    n = 1000
    return drift_of(
        batch={"income": spread(n, 0.5), "channel": ["online", "branch"] * 300 + ["bnpl_partner"] * 400,
               "age": spread(n)},
        reference={"income": spread(n), "channel": ["online", "branch"] * 500, "age": spread(n)},
    )


@pytest.mark.parametrize(
    ("branch", "subject"),
    [
        ("promote", "[ml:credit_default] PROMOTED: v0003 is now in production (2026-01-03)"),
        ("hold", "[ml:credit_default] HOLD (drift): v0003 not promoted, production stays v0002 (2026-01-03)"),
        ("reject", "[ml:credit_default] REJECTED: v0003 failed the quality gates (2026-01-03)"),
    ],
)
def test_the_subject_names_pipeline_event_version_and_date(branch: str, subject: str):
    assert alerts.outcome_email(outcome(branch)).subject == subject


def test_the_body_lists_the_decision_facts(monkeypatch):
    monkeypatch.delenv("ML_RUNBOOK_URL", raising=False)

    body = alerts.outcome_email(outcome("promote", champion_score=None)).html

    assert "<th align='left' style='padding:2px 12px 2px 0'>candidate roc_auc</th><td>0.8123</td>" in body
    assert "<th align='left' style='padding:2px 12px 2px 0'>production roc_auc</th><td>–</td>" in body
    assert "scheduled__2026-01-03T00:00:00+00:00" in body
    assert "<td>quality gates passed</td>" in body
    assert "RUNBOOK.md#alert-model-promoted" in body


def test_each_decision_says_what_to_do():
    held = alerts.outcome_email(outcome("hold")).html
    rejected = alerts.outcome_email(outcome("reject")).html

    assert "<h3>What to do</h3><p>Production was left unchanged. Look at the drifted features" in held
    assert "#alert-drift-hold" in held
    assert "The candidate failed a quality gate" in rejected
    assert "#alert-candidate-rejected" in rejected


def test_the_runbook_link_follows_ml_runbook_url(monkeypatch):
    monkeypatch.setenv("ML_RUNBOOK_URL", "https://git.example.com/ml/RUNBOOK.md")

    body = alerts.outcome_email(outcome("reject")).html

    link = "https://git.example.com/ml/RUNBOOK.md#alert-candidate-rejected"
    assert f"<a href='{link}'>{link}</a>" in body


def test_text_from_data_and_errors_is_escaped():
    body = alerts.outcome_email(outcome("reject", reasons=["<script>alert(1)</script> & more"])).html

    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body


# feature, importance rank (none without a stored importance), type, level badge, six statistics, new levels, why
ROW = re.compile(r"<tr><td>(.*?)</td><td class='num'>(?:\d+|–)</td><td>(\w+)</td><td><span class='badge'[^>]*>"
                 r"(\w+)</span></td>(?:<td class='num'>(?:-?[\d.]+|–)</td>){6}<td>(.*?)</td><td>(.*?)</td></tr>")


def test_a_held_email_shows_the_drift_table_severe_feature_first(drift):
    body = alerts.outcome_email(outcome("hold"), drift=drift).html

    assert "<h3>Drift by feature</h3><p>Drift verdict <b>drift</b>: 2 of 3 features drifted (1 severely)" in body
    rows = [(name, kind, level, new_levels) for name, kind, level, new_levels, _ in ROW.findall(body)]
    assert rows == [
        ("channel", "categorical", "severe", "bnpl_partner"),
        ("income", "numeric", "drifted", ""),
        ("age", "numeric", "none", ""),
    ]
    assert ROW.findall(body)[1][4].startswith("wasserstein 0.433 &gt; ")  # why income drifted (escaped)


def test_feature_names_and_levels_in_the_drift_table_are_escaped():
    n = 600
    drift = drift_of(batch={"<b>x</b>": ["<i>new</i>"] * n}, reference={"<b>x</b>": ["a", "b"] * (n // 2)})

    body = alerts.outcome_email(outcome("hold"), drift=drift).html

    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in body
    assert "<td>&lt;i&gt;new&lt;/i&gt;</td>" in body
    assert "<b>x</b>" not in body and "<i>new</i>" not in body


def test_no_drift_table_without_a_reference():
    no_reference = {"verdict": "no_reference", "reasons": ["no production model yet: nothing to compare with"],
                    "drifted_features": [], "severe_features": [], "worst": []}

    assert "Drift by feature" not in alerts.outcome_email(outcome("promote"), drift=no_reference).html
    assert "Drift by feature" not in alerts.outcome_email(outcome("promote")).html


def test_the_airflow_run_link_is_included_when_known():
    url = "http://localhost:8080/dags/ml_training__credit_default/runs/x"

    assert f"<td>{url}</td>" in alerts.outcome_email(outcome("promote"), run_url=url).html
    assert "Airflow run" not in alerts.outcome_email(outcome("promote")).html


def test_a_task_failure_email_names_the_task_and_shows_the_error_escaped():
    email = alerts.task_failure_email(
        "credit_default", "ml_training__credit_default", "validate", "manual__1", "2026-01-03",
        error="column 'age': 2 values below minimum 18 <b>", try_number=1, log_url="http://log")

    assert email.subject == "[ml:credit_default] FAILED task validate in ml_training__credit_default (2026-01-03)"
    assert "<pre>column &#39;age&#39;: 2 values below minimum 18 &lt;b&gt;</pre>" in email.html
    assert "<td>http://log</td>" in email.html
    assert "#alert-task-failed" in email.html


def test_a_failure_without_a_logical_date_names_the_run():
    email = alerts.task_failure_email("credit_default", "dag", "train", "manual__42", None, error="boom")

    assert email.subject.endswith("(manual__42)")


def test_a_run_failure_email_lists_the_failed_tasks():
    email = alerts.run_failure_email("house_prices", "ml_training__house_prices", "manual__1", "2026-01-03",
                                     failed_tasks=["extract", "validate"], reason="task failure")

    assert email.subject == "[ml:house_prices] FAILED run ml_training__house_prices (2026-01-03)"
    assert "<td>extract, validate</td>" in email.html
    assert "#alert-run-failed" in email.html


def test_a_run_failure_with_no_known_failed_task_says_unknown():
    email = alerts.run_failure_email("house_prices", "dag", "manual__1", None, failed_tasks=[])

    assert "<td>unknown</td>" in email.html


@pytest.mark.parametrize("event", alerts.EVENTS)
def test_every_event_has_a_subject_tag_a_runbook_anchor_and_advice(event: str):
    tag, anchor, todo = alerts.EVENTS[event]

    assert tag and anchor.startswith("alert-") and len(todo) > 40
