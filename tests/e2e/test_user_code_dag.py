"""The worked example of one's own model code (include/pipelines/diabetes.yaml, include/models/diabetes.py)
end to end through Airflow: trained, promoted and scored through the production Asset by the DAGs, and its
saved artifact loaded and scored again in a fresh Python process with the same predictions."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from include.ml import paths
from include.ml.config import get_pipeline
from include.ml.simulate import write_batches, write_scoring_batches
from include.ml.steps import registry_for
from include.ml.user_code import CodeReference, source_sha256
from tests.conftest import ROOT, body_of
from tests.e2e import test_batch_scoring_dag
from tests.runnable_docs import run_blocks

bundle_dags = test_batch_scoring_dag.dags  # its fixture `dags`: the bundle's DAGs, parsed as the DAG processor does

pytestmark = pytest.mark.e2e

FRESH_PROCESS_SCORING = """
import json, sys
import pandas as pd
from include.ml.config import get_pipeline
from include.ml.steps import registry_for

config = get_pipeline("diabetes")
registry = registry_for(config)
version = registry.production()
model = registry.load(version)  # signature checked; the model code is imported from the bundle
features = [f["name"] for f in registry.metadata(version)["features"]]
frame = pd.read_parquet(sys.argv[1])
print(json.dumps({"version": version, "steps": list(model.named_steps),
                  "predictions": model.predict(frame[features]).tolist(),
                  "feature_module_loaded": "include.models.diabetes" in sys.modules}))
"""


def _production_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return [e.extra for e in session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == "ml_production_model__diabetes", AssetEvent.source_run_id == run_id)]


def test_own_model_code_is_trained_promoted_scored_and_reloaded_in_a_fresh_process(bundle_dags, ml_home, smtp_inbox):
    config = get_pipeline("diabetes")
    write_batches(config, dt.date(2026, 1, 1), 1)

    training = bundle_dags[config.dag_id].test(logical_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))

    states = {ti.task_id: str(ti.state) for ti in training.get_task_instances()}
    assert str(training.state) == "success", states
    assert states["promote"] == "success", states
    assert [(e["version"], e["action"]) for e in _production_events(training.run_id)] == [("v0001", "promote")]
    registry = registry_for(config)
    metadata = registry.metadata("v0001")
    code = metadata["model_code"]
    assert (code["factory"]["module"], code["factory"]["function"]) == ("include.models.diabetes", "build_model")
    assert code["feature_code"]["function"] == "add_features"
    assert code["factory"]["sha256"] == source_sha256(CodeReference.parse(config.model.factory))
    assert code["bundle_version"] == metadata["code_version"]
    assert metadata["metrics"]["r2"] >= config.gates.min_score

    # the production Asset's event is what the scoring DAG runs on: it scores with the promoted version
    delivered = write_scoring_batches(config, dt.date(2026, 1, 2), 1)
    scoring = bundle_dags[config.scoring_dag_id].test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert str(scoring.state) == "success"
    out = paths.predictions_dir(config, "2026-01-02")
    summary = json.loads((out / "_summary.json").read_text())
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (80, 80, 0)

    first = delivered["scoring"][0]
    scored = pd.read_parquet(out / f"{first.stem}.parquet")
    assert set(scored["model_version"]) == {"v0001"}
    fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS_SCORING, str(first)], cwd=ROOT,
                           env={**os.environ, "ML_HOME": str(ml_home)}, capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    reloaded = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert reloaded["version"] == "v0001"
    assert reloaded["steps"] == ["features", "preprocess", "model"]
    assert reloaded["feature_module_loaded"]
    assert reloaded["predictions"] == pytest.approx(scored["prediction"].tolist(), rel=1e-12)


def test_the_notebook_walkthrough_commands_run_on_a_fresh_data_root(airflow_db, smtp_inbox, tmp_path):
    """docs/notebook-to-pipeline.md: config check, simulate, validate, train, `airflow dags test` and
    `models show`, as a person following it types them."""
    env = {**os.environ, "ML_HOME": str(tmp_path / "ml-home")}

    assert run_blocks(ROOT / "docs" / "notebook-to-pipeline.md", env) == 4


def test_model_code_that_config_check_refuses_fails_the_first_task_once_without_retries(
        bundle_dags, ml_home, smtp_inbox):
    """The DAG parsed (the module defines the function), but the function returns no model: the run's
    first step says so, naming the file and key, and is not retried; nothing is trained."""
    import uuid

    from include.ml.config import PipelineConfig

    module = ROOT / "include" / "models" / f"_test_{uuid.uuid4().hex[:10]}.py"
    module.write_text("def build_model(seed, **params):\n    params  # forgot to return the model\n")
    try:
        shipped = get_pipeline("diabetes")
        config = PipelineConfig.model_validate({**shipped.model_dump(mode="json"), "model": {
            **shipped.model_dump(mode="json")["model"], "factory": f"{module.relative_to(ROOT)}:build_model"}})
        training_module = next(m for m in list(sys.modules.values())  # dags/ml_training.py, as the bag loaded it
                               if getattr(m, "__file__", None) == str(ROOT / "dags" / "ml_training.py"))
        dag = training_module.build_training_dag(config)
        write_batches(config, dt.date(2026, 1, 1), 1)

        run = dag.test(logical_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    finally:
        module.unlink()
        sys.modules.pop(f"include.models.{module.stem}", None)

    tasks = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert str(tasks["extract"].state) == "failed" and tasks["extract"].try_number == 1  # not retried
    assert str(tasks["train"].state) == "upstream_failed"
    assert registry_for(config).versions() == []
    text = body_of(smtp_inbox.wait_for("extract"))
    assert "model.factory: include/models/_test_" in text and "returned NoneType" in text
