"""Hostile histories, generated: whatever a tampered file holds in any field of any history record
(run history, scoring and performance histories, the audit log, the production pointer), the
overview page, the pipeline page, the ``report`` file and every alert email built from those records
show it as text. Number fields are no exception: a score, row count or drift value that is a string,
a dict, a list, NaN or infinity is printed escaped or as "–", and never takes the page down.

Each example writes one generated set of records into a fresh copy of a real one-run history (built
once per module) and renders everything; a page passes when it builds no element the clean page
does not have, no event-handler attribute, no script link, and holds no generated string raw."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from include.ml import alerts, cli, monitoring, steps, storage
from include.ml.config import get_pipeline
from tests.hostile_html import BREAKOUT, SCRIPT, PageMarkup, assert_no_markup_from_files

pytestmark = pytest.mark.reliability

PIPELINE = "credit_default"
PAYLOADS = [SCRIPT, BREAKOUT, "</textarea><script>alert(2)</script>", "\"><svg onload=alert(3)>",
            "' onmouseover='alert(4)", "javascript:alert(5)//<b>", "data:text/html,<script>alert(6)</script>",
            "<iframe src=javascript:alert(7)>", "]]><!--<a href=javascript:alert(8)>-->", "&lt;script&gt;&amp;"]
FILLER = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # any unicode, control characters too


@st.composite
def hostile_text(draw) -> str:
    """Markup (at least one payload) among unicode and control characters, sometimes thousands long."""
    pieces = draw(st.lists(st.tuples(FILLER, st.sampled_from(PAYLOADS)), min_size=1, max_size=3))
    text = "".join(filler + payload for filler, payload in pieces)
    return text * draw(st.sampled_from([1, 1, 1, 40, 400]))


TEXT = hostile_text()
TEXTS = st.lists(TEXT, min_size=1, max_size=3)
# what a tampered file can hold where a number belongs
ANY_VALUE = st.one_of(TEXT, st.none(), st.booleans(), st.integers(-(10 ** 20), 10 ** 20),
                      st.floats(allow_nan=True, allow_infinity=True), TEXTS,
                      st.dictionaries(TEXT, TEXT, min_size=1, max_size=2))


def drift_by_feature() -> st.SearchStrategy:
    return st.dictionaries(TEXT, st.fixed_dictionaries({"statistic": TEXT, "value": ANY_VALUE, "level": TEXT}),
                           min_size=1, max_size=2)


def late(text: str) -> str:
    """A hostile ``finished_at`` that still sorts after the real runs (so it is the latest)."""
    return f"2999-{text}"


@st.composite
def hostile_histories(draw, real_run: dict) -> dict:
    """One record of every history file, every field generated: text fields hostile text, number
    fields any JSON value, lists of hostile text, dicts keyed by hostile text."""
    run = {}
    for key, value in real_run.items():
        if key == "drift_by_feature":
            run[key] = draw(drift_by_feature())
        elif key in ("reasons", "drifted_features"):
            run[key] = draw(TEXTS)
        elif key == "finished_at":
            run[key] = late(draw(TEXT))
        elif isinstance(value, str) and key not in ("state",):
            run[key] = draw(TEXT)
        else:  # numbers, flags and fields the first run left empty
            run[key] = draw(ANY_VALUE)
    failed = {"pipeline": PIPELINE, "run_id": draw(TEXT), "logical_date": draw(TEXT), "state": "failed",
              "branch": "failed", "step": draw(TEXT), "error": draw(TEXT), "error_type": draw(TEXT),
              "quarantined_to": draw(TEXT), "reasons": draw(TEXTS), "finished_at": draw(TEXT),
              "workspace": draw(TEXT)}
    scoring = {"logical_date": draw(TEXT), "run_id": draw(TEXT), "partitions": draw(ANY_VALUE),
               "rows": draw(ANY_VALUE), "scored": draw(ANY_VALUE), "rejected": draw(ANY_VALUE),
               "reject_reasons": draw(st.dictionaries(TEXT, ANY_VALUE, max_size=2)), "versions": draw(TEXTS),
               "prediction_mean": draw(ANY_VALUE), "finished_at": draw(TEXT),
               "prediction_drift": {"verdict": draw(TEXT), "reference_version": draw(TEXT),
                                    "statistic": draw(TEXT), "value": draw(ANY_VALUE), "level": draw(TEXT),
                                    "mean": draw(ANY_VALUE), "reference_mean": draw(ANY_VALUE),
                                    "reasons": draw(TEXTS)}}
    performance = {"scoring_date": draw(TEXT), "labels_date": draw(TEXT), "model_version": draw(TEXT),
                   "metric": draw(TEXT), "value": draw(ANY_VALUE), "validation_score": draw(ANY_VALUE),
                   "rows": draw(ANY_VALUE), "floor": draw(ANY_VALUE), "status": draw(TEXT), "reasons": draw(TEXTS),
                   "measured_at": draw(TEXT)}
    audit = {"time": draw(TEXT), "action": draw(TEXT), "from": draw(TEXT), "to": draw(TEXT), "actor": draw(TEXT),
             "reason": draw(TEXT)}
    pointer = {"version": draw(TEXT), "since": draw(TEXT), "actor": draw(TEXT), "reason": draw(TEXT)}
    return {"run": run, "failed": failed, "scoring": scoring, "performance": performance, "audit": audit,
            "pointer": pointer}


def generated_strings(value: object) -> list[str]:
    """Every string inside a generated record (keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in generated_strings(k) + generated_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in generated_strings(v)]
    return []


def append_line(path: Path, record: dict) -> None:
    """A history line as a tampered file holds it (NaN and infinity as JSON's extensions write them)."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def write_histories(home: Path, histories: dict) -> None:
    """The generated records into ``home``; the audit line and the pointer through the registry, which
    signs them (unsigned, they are refused before anything is shown)."""
    config = get_pipeline(PIPELINE)
    layout = config.registry_layout
    append_line(layout.run_history, histories["failed"])
    append_line(layout.run_history, histories["run"])
    append_line(layout.scoring_history, histories["scoring"])
    append_line(layout.performance_history, histories["performance"])
    registry = steps.registry_for(config)
    entry = registry._chained(histories["audit"])
    registry._append_audit(entry)
    registry._write_pointer({**registry.pointer(), **histories["pointer"], "entry": entry})


def every_rendering(home: Path, histories: dict) -> dict[str, str]:
    """The overview and pipeline pages, the report file and every email, from the files in ``home``
    and the records they were written from."""
    config = get_pipeline(PIPELINE)
    detail = monitoring.pipeline_detail(config)
    report = home / "report.html"
    assert cli.main(["report", "--pipeline", PIPELINE, "--out", str(report)]) == 0
    run, scoring, performance, audit = (histories[k] for k in ("run", "scoring", "performance", "audit"))
    outcome = {**run, "pipeline": PIPELINE, "metric": performance["metric"]}
    pages = {"overview": monitoring.render_overview(monitoring.overview([config])),
             "pipeline": monitoring.render_pipeline(detail), "report": report.read_text()}
    for branch in ("promote", "hold", "reject"):
        pages[f"outcome email ({branch})"] = alerts.outcome_email({**outcome, "branch": branch},
                                                                  run_url=run["run_id"]).html
    pages["production change email"] = alerts.production_change_email(
        PIPELINE, audit, run["run_id"], {"metric": performance["metric"],
                                         "metrics": {performance["metric"]: performance["value"]}}).html
    pages["performance email"] = alerts.performance_email(
        {"pipeline": PIPELINE, "labels_date": performance["labels_date"], "labelled_rows": performance["rows"],
         "matched_rows": scoring["scored"], "breaches": [performance]}).html
    pages["prediction drift email"] = alerts.prediction_drift_email(
        {**scoring, "pipeline": PIPELINE, "scored": scoring["scored"]}).html
    failed = histories["failed"]
    pages["task failure email"] = alerts.task_failure_email(
        PIPELINE, failed["step"], failed["error_type"], failed["run_id"], failed["logical_date"],
        error=failed["error"], try_number=run["rows"], log_url=failed["workspace"]).html
    pages["run failure email"] = alerts.run_failure_email(PIPELINE, failed["step"], failed["run_id"],
                                                          failed["logical_date"], failed["reasons"],
                                                          reason=failed["error"]).html
    return pages


@pytest.fixture(scope="module")
def base_home(production_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real history (day 1 trained and promoted) that every example copies."""
    home = tmp_path_factory.mktemp("hostile-html-base") / "ml-home"
    shutil.copytree(production_home, home)
    return home


@pytest.fixture(scope="module")
def real_run(base_home: Path) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(base_home))
        return steps.run_history(get_pipeline(PIPELINE))[-1]


@pytest.fixture(scope="module")
def clean_tags(base_home: Path) -> set[str]:
    """The elements the pages and emails have when nothing in the files is hostile, plus those of the
    sections this one-run history leaves out (the drift heatmap's labels, validation warnings)."""
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        home = Path(folder) / "ml-home"
        shutil.copytree(base_home, home)
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline(PIPELINE)
        real = steps.run_history(config)[-1]
        failed = {**real, "state": "failed", "step": "train", "error": "e", "error_type": "E", "reasons": []}
        clean = {"run": real, "failed": failed,
                 "scoring": {"logical_date": "2026-01-02", "run_id": "r", "rows": 10, "scored": 9, "rejected": 1,
                             "reject_reasons": {"x": 1}, "versions": ["v0001"], "prediction_drift": {
                                 "verdict": "none", "reference_version": "v0001", "statistic": "psi", "value": 0.1,
                                 "level": "none", "mean": 0.2, "reference_mean": 0.2, "reasons": []}},
                 "performance": {"scoring_date": "2026-01-02", "labels_date": "2026-01-03", "model_version": "v0001",
                                 "metric": "roc_auc", "value": 0.7, "validation_score": 0.8, "rows": 10,
                                 "floor": 0.6, "status": "ok", "reasons": []},
                 "audit": {"time": "t", "action": "promote", "from": "v0001", "to": "v0001", "actor": "a",
                           "reason": "r"}}
        for key in ("run", "scoring", "performance"):
            storage.append_jsonl({"run": config.registry_layout.run_history,
                                  "scoring": config.registry_layout.scoring_history,
                                  "performance": config.registry_layout.performance_history}[key], clean[key])
        pages = every_rendering(home, clean).values()
        return {tag for page in pages for tag in PageMarkup.of(page).tags} | {"tspan", "ul", "li"}


def test_generated_hostile_histories_render_as_text_in_every_page_report_and_email(base_home, real_run, clean_tags):
    # no shrinking: a generated history is kilobytes of text, and shrinking it takes minutes
    @settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(histories=hostile_histories(real_run))
    def renders_inert(histories):
        with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
            home = Path(folder) / "ml-home"
            shutil.copytree(base_home, home)
            patch.setenv("ML_HOME", str(home))
            write_histories(home, histories)
            pages = every_rendering(home, histories)
        raw = [s for s in generated_strings(histories) if any(c in s for c in "<>\"'")]
        for name, page in pages.items():
            parsed = assert_no_markup_from_files(page)
            assert set(parsed.tags) <= clean_tags, (name, set(parsed.tags) - clean_tags)
            assert not {"iframe", "textarea"} & set(parsed.tags), name
            leaked = [s[:80] for s in raw if s in page]
            assert not leaked, (name, leaked)

    renders_inert()
