"""The bad-input catalogue (docs/reliability.md): each case says what the user sees (what, where,
what to do), whether the input is kept (quarantined where validation applies), that production is
unchanged, and which alert was sent."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from include.ml import paths, steps
from include.ml.config import ConfigError, PipelineConfig, SourceConfig, get_pipeline, load_config
from tests.conftest import ROOT, body_of
from tests.reliability.conftest import DAY2, Registry, day2_at_simulation_size, run_date

pytestmark = pytest.mark.reliability

QUARANTINED = "quarantined"  # copied with reasons.json to $ML_HOME/quarantine/<pipeline>/; landing untouched
KEPT = "kept"  # left as delivered in the landing folder
NONE = "none"  # there was no input file


@dataclass(frozen=True)
class Case:
    """A bad day-2 delivery that stops the run."""

    name: str
    deliver: Callable[[pd.DataFrame, Path], None]  # writes the landing file from the clean frame
    task: str
    message: tuple[str, ...]  # what the user reads (task log and email), piece by piece
    input: str
    retried: bool = False
    config: Callable[[PipelineConfig], PipelineConfig] | None = None


def csv(frame: pd.DataFrame, path: Path, **options) -> None:
    frame.to_csv(path, index=False, **options)


def changed(**columns) -> Callable[[pd.DataFrame, Path], None]:
    """A delivery whose columns are replaced by ``columns[name](frame)``."""
    def deliver(frame: pd.DataFrame, path: Path) -> None:
        frame = frame.copy()
        for name, value in columns.items():
            frame[name] = value(frame)
        csv(frame, path)
    return deliver


def first_rows(name: str, values: list) -> Callable[[pd.DataFrame], pd.Series]:
    """Column ``name`` with its first rows replaced by ``values``."""
    def column(frame: pd.DataFrame) -> pd.Series:
        out = frame[name].astype(object)
        out.iloc[: len(values)] = values
        return out
    return column


def text_truncated(frame: pd.DataFrame, path: Path) -> None:
    """The upload stopped in the middle of row 600 (a cut inside the last field is indistinguishable from a
    file without a final line break: validation judges that value like any other)."""
    lines = frame.to_csv(index=False).splitlines(keepends=True)
    path.write_text("".join(lines[:600]) + lines[600][:25])


def parquet_source(config: PipelineConfig) -> PipelineConfig:
    return config.model_copy(update={"source": SourceConfig(path="landing/credit_default/{ds}.parquet")})


def with_salary_feature(config: PipelineConfig) -> PipelineConfig:
    from include.ml.config import FeatureSpec

    return config.model_copy(update={"features": [*config.features, FeatureSpec(name="salary", type="numeric")]})


CASES = [
    Case("missing file", lambda frame, path: path.unlink(), "extract",
         ("2026-01-02.csv does not exist. Check that the upstream delivery for this date arrived",
          "the run can be retried once it is there"), NONE, retried=True),
    Case("empty file", lambda frame, path: path.write_bytes(b""), "extract",
         ("cannot be read as csv: No columns to parse from file",
          "Ask the upstream owner for a complete re-delivery; the file is kept as is"), KEPT),
    Case("header only", lambda frame, path: path.write_text(",".join(frame.columns) + "\n"), "extract",
         ("has no data rows (columns: ['customer_id', 'age',", "complete re-delivery; the file is kept as is"), KEPT),
    Case("truncated CSV", text_truncated, "extract",
         ("looks truncated: its last line (data row 600) has", "does not end with a line break",
          "complete re-delivery"), KEPT),
    Case("corrupt Parquet", lambda frame, path: path.with_suffix(".parquet").write_bytes(b"PAR1" + b"\0" * 500),
         "extract", ("2026-01-02.parquet cannot be read as parquet", "complete re-delivery"), KEPT,
         config=parquet_source),
    Case("wrong delimiter", lambda frame, path: csv(frame, path, sep=";"), "extract",
         ("reads as a single column 'customer_id;age;income", "its fields look separated by ';', not ','",
          "re-delivery separated by commas"), KEPT),
    Case("wrong encoding", lambda frame, path: csv(frame.assign(region=frame["region"] + "\u00e9"), path,
                                                   encoding="latin-1"),
         "extract", ("cannot be read as csv: it is not UTF-8 text (byte 0xe9 is not valid there)",
                     "re-delivery encoded as UTF-8"), KEPT),
    Case("missing target column", lambda frame, path: csv(frame.drop(columns="default"), path), "validate",
         ("column 'default': is missing from the batch",), QUARANTINED),
    Case("missing feature column", lambda frame, path: csv(frame.drop(columns="income"), path), "validate",
         ("column 'income': is missing from the batch",), QUARANTINED),
    Case("text in a numeric column", changed(age=first_rows("age", ["forty", "unknown", "thirty"])), "validate",
         ("column 'age': 3 values are not numbers (first rows: 0, 1, 2; values: 'forty', 'unknown', 'thirty')",),
         QUARANTINED),
    Case("all-missing column", changed(months_employed=lambda f: None), "validate",
         ("column 'months_employed': has more than 10% missing values (100.0%)",), QUARANTINED),
    Case("missing values above the allowed share",
         changed(income=lambda f: f["income"].fillna(50_000.0).where(f.index % 20 >= 7)), "validate",
         ("column 'income': has more than 20% missing values (35.0%)",), QUARANTINED),
    Case("out-of-range values above the allowed share",
         changed(utilization=lambda f: f["utilization"].where(f.index >= 40, 7.5)), "validate",
         ("column 'utilization': 40 values above maximum 1 (first rows: 0, 1, 2, 3, 4; values: 7.5, 7.5, 7.5)",
          "[5.00% of rows; the limit is 1.00%]"), QUARANTINED),
    Case("infinities", changed(debt_to_income=first_rows("debt_to_income", [float("inf"), float("-inf")])), "validate",
         ("column 'debt_to_income': 2 values are infinite (first rows: 0, 1; values: inf, -inf)",), QUARANTINED),
    Case("single-class target", changed(default=lambda f: 0), "validate",
         ("column 'default': has a single class: a classifier cannot learn from it",), QUARANTINED),
    Case("batch below the minimum size", lambda frame, path: csv(frame.head(300), path), "validate",
         ("batch: has fewer than 500 rows (has 300)",), QUARANTINED),
    Case("config naming a column the batch lacks", lambda frame, path: None, "validate",
         ("column 'salary': is missing from the batch", "credit_default.yaml if a rule there is wrong"),
         QUARANTINED, config=with_salary_feature),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_delivery_stops_the_run_saying_what_where_and_what_to_do_and_loses_nothing(
        case: Case, home: Path, smtp_inbox):
    config = case.config(get_pipeline("credit_default")) if case.config else get_pipeline("credit_default")
    clean = pd.read_csv(get_pipeline("credit_default").source.path_for(DAY2))
    landing = config.source.path_for(DAY2)
    if landing != get_pipeline("credit_default").source.path_for(DAY2):  # another source format
        get_pipeline("credit_default").source.path_for(DAY2).unlink()
    case.deliver(clean, get_pipeline("credit_default").source.path_for(DAY2))
    delivered = landing.read_bytes() if landing.exists() else None
    before = Registry.of(config)

    outcome = run_date(config, DAY2, inbox=smtp_inbox)

    # what the user sees: the failing task, its message, and whether Airflow retries it
    assert outcome.failed_task == case.task
    for piece in case.message:
        assert piece in outcome.error
    assert str(landing) in outcome.error or case.task != "extract"
    assert outcome.retried is case.retried
    # the input: as delivered in the landing folder; a copy with the reasons in quarantine
    assert (landing.read_bytes() if landing.exists() else None) == delivered
    quarantine = paths.quarantine_dir(config.name)
    if case.input == QUARANTINED:
        [folder] = list(quarantine.iterdir())
        assert (folder / landing.name).read_bytes() == delivered
        reasons = json.loads((folder / "reasons.json").read_text())
        assert any(case.message[0] in failure["message"] for failure in reasons["failures"])
        assert f"The batch was copied to {folder} (with reasons.json)" in outcome.error
        assert "production is unchanged" in outcome.error
    else:
        assert not quarantine.exists()
    # production: pointer, versions and audit log untouched
    assert Registry.of(config) == before
    # the alert: the task-failure email, carrying the same message
    [email] = outcome.emails
    assert email["subject"] == f"[ml:credit_default] FAILED task {case.task} in ml_training__credit_default ({DAY2})"
    assert case.message[0] in body_of(email)


@pytest.mark.parametrize(
    ("name", "deliver", "warning"),
    [
        ("unexpected extra columns", changed(promo_code=lambda f: "SPRING", score_v2=lambda f: 0.5), None),
        ("a few out-of-range values",
         changed(utilization=lambda f: f["utilization"].where(f.index >= 4, 1.5)),
         "column 'utilization': 4 values above maximum 1 (first rows: 0, 1, 2, 3; values: 1.5, 1.5, 1.5) "
         "[0.50% of rows; the limit is 1.00%]"),
        ("duplicated rows", lambda frame, path: csv(pd.concat([frame, frame.head(50)]), path),
         "batch: 50 rows repeat an earlier row exactly (first rows: 800, 801, 802, 803, 804); "
         "was a delivery sent twice?"),
    ],
)
def test_a_usable_delivery_with_oddities_trains_records_the_warning_and_decides_by_the_gates(
        name: str, deliver, warning: str | None, home: Path, smtp_inbox):
    config = get_pipeline("credit_default")
    landing = config.source.path_for(DAY2)
    deliver(pd.read_csv(landing), landing)
    delivered = landing.read_bytes()

    outcome = run_date(config, DAY2, inbox=smtp_inbox)

    assert outcome.failed_task is None, outcome.error
    workspace = paths.workspace_dir(config.name, outcome.run_id)
    warnings = [w["message"] for w in json.loads((workspace / "validation.json").read_text())["warnings"]]
    assert warning is None or warning in warnings
    assert not [w for w in warnings if "promo_code" in w or "score_v2" in w]  # extra columns are not judged
    assert list(pd.read_parquet(workspace / "validated.parquet").columns) == [
        "customer_id", *(f.name for f in config.features), "default"]  # extra columns never reach the model
    gates = json.loads((workspace / "evaluation.json").read_text())["gates"]["passed"]
    assert outcome.branch == ("promote" if gates else "reject")
    registry = steps.registry_for(config)
    assert registry.production() == ("v0002" if gates else "v0001")
    assert landing.read_bytes() == delivered
    [email] = outcome.emails
    assert email["subject"].startswith("[ml:credit_default] PROMOTED: v0002" if gates else
                                       "[ml:credit_default] REJECTED: v0002")


def test_unseen_categories_warn_drift_and_hold_with_production_unchanged(home: Path, smtp_inbox):
    config = get_pipeline("credit_default")
    landing = day2_at_simulation_size(config)
    frame = pd.read_csv(landing)
    frame.loc[frame.index % 3 == 0, "channel"] = "bnpl_partner"
    csv(frame, landing)
    before = Registry.of(config)

    outcome = run_date(config, DAY2, inbox=smtp_inbox)

    assert outcome.failed_task is None and outcome.branch == "hold"
    workspace = paths.workspace_dir(config.name, outcome.run_id)
    [warning] = [w for w in json.loads((workspace / "validation.json").read_text())["warnings"]
                 if w["column"] == "channel"]
    unseen = (len(frame) + 2) // 3
    assert warning["message"].startswith(f"column 'channel': {unseen} values are levels training never saw")
    assert "bnpl_partner" in warning["message"]
    after = Registry.of(config)
    assert (after.pointer, after.audit) == (before.pointer, before.audit)
    assert after.versions == ["v0001", "v0002"]
    assert steps.registry_for(config).metadata("v0002")["decision"] == "held"
    [email] = outcome.emails
    assert email["subject"] == ("[ml:credit_default] HOLD (drift): v0002 not promoted, production stays v0001 "
                                f"({DAY2})")
    assert "bnpl_partner" in body_of(email)


def test_a_tampered_production_artifact_is_never_loaded_and_sends_the_tampered_alert(home: Path, smtp_inbox):
    config = get_pipeline("credit_default")
    artifact = steps.registry_for(config).versions_dir / "v0001" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    tampered = artifact.read_bytes()
    before = Registry.of(config)

    outcome = run_date(config, DAY2, inbox=smtp_inbox)

    assert (outcome.failed_task, outcome.retried) == ("evaluate", False)
    assert f"model artifact {artifact} has sha256" in outcome.error
    assert ("was changed after registration and will not be loaded. Roll back to another version or retrain; "
            "keep the file for investigation.") in outcome.error
    assert artifact.read_bytes() == tampered  # kept for investigation
    assert Registry.of(config) == before
    [email] = outcome.emails
    assert email["subject"] == (f"[ml:credit_default] TAMPERED model artifact evaluate in "
                                f"ml_training__credit_default ({DAY2})")


READ_ONLY_CONCLUDE = """
import json, sys
from include.ml import paths, steps
from include.ml.config import get_pipeline
from include.ml.errors import PipelineError
config = get_pipeline("credit_default")
run_id = sys.argv[1]
try:
    steps.conclude(config, paths.workspace_dir(config.name, run_id), sys.argv[2], run_id, sys.argv[3])
except PipelineError as error:
    print(json.dumps({"type": type(error).__name__, "message": str(error)}))
except Exception as error:
    print(json.dumps({"type": type(error).__name__, "message": str(error), "retried": True}))
"""


def _read_only(path: Path) -> None:
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o555)
        for name in files:
            os.chmod(Path(folder) / name, 0o444)


def test_a_read_only_registry_refuses_the_new_version_clearly_and_production_stays(home: Path, smtp_inbox):
    """The registry folder is read-only when the run concludes. As root, permission bits do not bind, so the
    step runs in a child without the capability to override them (setpriv), as an ordinary worker would."""
    from include.ml.errors import RegistryError

    config = get_pipeline("credit_default")
    registry = steps.registry_for(config)

    def conclude_in_read_only_registry() -> dict:
        decision = json.loads((paths.workspace_dir(config.name, run_id) / "decision.json").read_text())
        _read_only(registry.root)
        command = [sys.executable, "-c", READ_ONLY_CONCLUDE, run_id, decision["branch"], DAY2]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: a read-only folder cannot be simulated")
            command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
        try:
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        finally:
            for folder, _, files in os.walk(registry.root):
                os.chmod(folder, 0o755)
                for name in files:
                    os.chmod(Path(folder) / name, 0o644)
        assert result.returncode == 0, result.stderr[-2000:]
        failure = json.loads(result.stdout)
        assert failure["type"] == "RegistryError", failure
        raise RegistryError(failure["message"])

    day2_at_simulation_size(config)
    before = Registry.of(config)
    run_id = f"scheduled__{DAY2}T00:00:00+00:00"
    outcome = run_date(config, DAY2, inbox=smtp_inbox, run_id=run_id,
                       overrides={"conclude": conclude_in_read_only_registry})

    assert outcome.failed_task == "promote" and outcome.retried is False  # day 2's clean batch passes the gates
    assert outcome.error.startswith(f"the model registry {registry.root} is not writable (Permission denied: ")
    assert ("so registering the new version was not done; production is unchanged. Give the Airflow workers write "
            "access to that folder, then clear the failed task to run it again.") in outcome.error
    assert Registry.of(config) == before
    assert not [p for p in registry.versions_dir.iterdir() if p.name.startswith(".staging")]
    assert (paths.workspace_dir(config.name, outcome.run_id) / "candidate.joblib").exists()  # nothing lost
    [email] = outcome.emails
    assert email["subject"].startswith(f"[ml:credit_default] FAILED task {outcome.failed_task}")
    assert "is not writable" in body_of(email)


# -- configs: refused when the file is read, before any run --------------------------------------------


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("malformed YAML", lambda text: text.replace("task: classification", "task: [classification"),
         ("not valid YAML: while parsing a flow sequence", "line 6, column 7")),
        ("unknown key", lambda text: text.replace("min_rows: 500", "min_rows: 500\n  min_row: 500"),
         ("validation.min_row: unknown key; remove it or check its spelling",
          "Fix the file and run `python -m include.ml config check` to verify.")),
        ("critical feature that is not a column", lambda text: text.replace(
            "critical_features: [income, utilization]", "critical_features: [income, salary]"),
         ("drift.critical_features ['salary'] are not declared features",)),
        ("wrong type", lambda text: text.replace("min_rows: 500", "min_rows: many"),
         ("validation.min_rows: Input should be a valid integer", "(got 'many')")),
    ],
)
def test_a_broken_config_is_refused_naming_file_and_key_and_the_other_pipelines_keep_running(
        name: str, edit, message: tuple[str, ...], tmp_path: Path, capsys, monkeypatch):
    from include.ml import config as config_module
    from include.ml.cli import main

    for shipped in config_module.config_paths():
        shutil.copy(shipped, tmp_path / shipped.name)
    broken = tmp_path / "credit_default.yaml"
    broken.write_text(edit(broken.read_text()))

    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    for piece in message:
        assert piece in str(caught.value)
    assert str(caught.value).startswith(str(broken))

    configs, errors = config_module.load_each(tmp_path)  # what the DAG files do while parsing
    others = [p.stem for p in config_module.config_paths() if p.stem != "credit_default"]
    assert [c.name for c in configs] == others and len(errors) == 1
    monkeypatch.setattr(config_module, "PIPELINES_DIR", tmp_path)
    assert main(["config", "check"]) == 1
    assert message[0] in capsys.readouterr().err


# -- the version parameter of model operations -------------------------------------------------------


@pytest.mark.parametrize("version", ["../../etc/passwd", "", "v\uff10\uff10\uff10\uff11", "v1", "v0001/../v0002",
                                     "V0001", " v0001", "v0001\n"])
def test_a_version_that_is_not_a_version_is_refused_and_nothing_changes(version: str, home: Path, capsys):
    from include.ml.cli import main

    config = get_pipeline("credit_default")
    before = Registry.of(config)

    code = main(["models", "promote", version, "--pipeline", "credit_default", "--reason", "reliability catalogue"])

    assert code == 1
    error = capsys.readouterr().err
    assert f"error: {version!r} is not a version id (expected 'v' and digits, e.g. v0001)" in error
    assert "list versions with `python -m include.ml models list --pipeline credit_default`" in error
    assert Registry.of(config) == before


def test_the_model_ops_request_refuses_what_is_not_a_version_in_words_and_changes_nothing(home: Path):
    """The trigger form takes any text for the version (a raw pattern message helped nobody, and an empty
    version is the documented rollback); the run's first task, ``check_request`` (``model_ops.plan_change``),
    refuses what is not a version id in words, before anything changes."""
    from airflow.dag_processing.dagbag import BundleDagBag

    from include.ml import model_ops
    from include.ml.errors import RegistryError

    bag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ml_model_ops.py"), bundle_path=ROOT, bundle_name="ml_pipeline")
    params = bag.dags["ml_model_ops"].params
    assert params["version"] is None  # the form's default: a rollback to the version production replaced
    config = get_pipeline("credit_default")
    before = Registry.of(config)
    for bad in ("../../etc/passwd", "v\uff10\uff10\uff10\uff11", "v1", "v0001; rm -rf /"):
        trial = copy.deepcopy(params)
        trial["version"] = bad  # the form lets it through
        with pytest.raises(RegistryError, match=f"{re.escape(repr(bad))} is not a version id"):
            model_ops.plan_change(config, "promote", bad, "a reason", "admin")
    assert Registry.of(config) == before


# -- scoring a batch larger than memory would allow if read whole ------------------------------------


def test_a_scoring_batch_is_read_in_chunks_so_memory_stays_bounded(home: Path, tmp_path: Path):
    import tracemalloc

    from include.ml.config import FeatureSpec
    from include.ml.scoring import score_file
    from include.ml.simulate import credit_default

    config = get_pipeline("credit_default")
    registry = steps.registry_for(config)
    model = registry.load("v0001")
    features = [FeatureSpec.model_validate(f) for f in registry.metadata("v0001")["features"]]
    day = credit_default(dt.date(2026, 1, 3), 20_000, seed=5, drifted=False)
    rows = 200_000
    source = tmp_path / "big.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(day, preserve_index=False)
    with pq.ParquetWriter(source, table.schema) as writer:
        for _ in range(rows // len(day)):
            writer.write_table(table, row_group_size=10_000)
    whole = day.memory_usage(deep=True).sum() * (rows // len(day))  # what reading it whole would hold

    tracemalloc.start()
    summary = score_file(model, "v0001", config, features, source, tmp_path / "out.parquet", chunk_rows=10_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert (summary.rows, summary.scored, summary.rejected, summary.chunks) == (rows, rows, 0, 20)
    assert peak < whole / 4, f"peak {peak / 1e6:.0f} MB against {whole / 1e6:.0f} MB for the whole file"
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_rows == rows

