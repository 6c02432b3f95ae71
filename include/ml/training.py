"""The steps of one training run: each reads and writes files in the run's workspace folder and
returns a small JSON-able dict (what a DAG task passes through XCom).

    extract -> validate -> train -> evaluate -> decide -> promote | hold | reject -> report
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

from include.ml import paths
from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import BatchValidationError
from include.ml.registry import ModelRegistry, write_json_atomic

BRANCHES = ("promote", "hold", "reject")
LIBRARIES = ("scikit-learn", "pandas", "numpy", "joblib", "pandera", "pyarrow")
FEATURE_SPEC = "feature_spec.json"


def _write(workspace: Path, name: str, data: dict) -> dict:
    workspace.mkdir(parents=True, exist_ok=True)
    write_json_atomic(workspace / name, data)
    return data


def _read(workspace: Path, name: str) -> dict:
    return json.loads((workspace / name).read_text())


def _features(workspace: Path) -> list[FeatureSpec]:
    return [FeatureSpec.model_validate(f) for f in _read(workspace, "features.json")["features"]]


def registry_for(config: PipelineConfig) -> ModelRegistry:
    """The model registry of a pipeline."""
    return ModelRegistry(config.registry_path)


def extract(config: PipelineConfig, workspace: Path, ds: str, source: Path | None = None) -> dict:
    """Read the landing batch for logical date ``ds`` (or the file ``source``); write it to
    ``batch.parquet``; return its fingerprint."""
    from include.ml.extract import fingerprint, read_batch

    source = source or config.source.path_for(ds)
    frame = read_batch(source, config.source.file_format)
    # Keep text as text: a stray word in a numeric column is validation's to report, not the writer's.
    text_columns = {c: "string" for c in frame.columns if frame[c].dtype == object}
    workspace.mkdir(parents=True, exist_ok=True)
    frame.astype(text_columns).to_parquet(workspace / "batch.parquet", index=False)
    return _write(workspace, "extract.json", {"ds": ds, **fingerprint(source, frame).to_dict()})


def resolve_features(config: PipelineConfig, frame) -> tuple[list[FeatureSpec], str]:
    """The features to use and where they came from: the config, the registry's saved spec
    (``registry``), or inferred from ``frame`` (``inferred``; see :func:`save_inferred_features`)."""
    if isinstance(config.features, list):
        return list(config.features), "config"
    saved = config.registry_path / FEATURE_SPEC
    if saved.exists():
        return [FeatureSpec.model_validate(f) for f in json.loads(saved.read_text())], "registry"
    from include.ml.validate import infer_features

    return infer_features(frame, config), "inferred"


def save_inferred_features(config: PipelineConfig, features: list[FeatureSpec]) -> None:
    """Fix a pipeline's inferred features in its registry, so later batches are held to them."""
    saved = config.registry_path / FEATURE_SPEC
    saved.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(saved, [f.model_dump() for f in features])


def check_with_production(config: PipelineConfig, frame):
    """Validate ``frame`` against the config and the production model's training data (ranges,
    levels). Returns ``(ValidationResult, features, feature origin, production version)``;
    raises :class:`BatchValidationError` on errors."""
    from include.ml.validate import check_batch

    features, origin = resolve_features(config, frame)
    production = registry_for(config).production()
    reference = registry_for(config).reference_profile(production) if production else None
    return check_batch(frame, config, features, reference), features, origin, production


def validate(config: PipelineConfig, workspace: Path, run_id: str = "manual", save_features: bool = True) -> dict:
    """Validate the extracted batch; write ``validated.parquet``. A failing batch is quarantined
    (copied with its reasons) and :class:`BatchValidationError` is raised. Features inferred from
    the first batch that passes are saved to the registry when ``save_features``."""
    import pandas as pd

    from include.ml.validate import quarantine

    extracted = _read(workspace, "extract.json")
    frame = pd.read_parquet(workspace / "batch.parquet")
    try:
        result, features, origin, production = check_with_production(config, frame)
    except BatchValidationError as error:
        source = Path(extracted["path"])
        target = paths.quarantine_dir(config.name) / f"{extracted['ds']}__{paths.safe_name(run_id)}"
        quarantine(source, target, error.failures, {"pipeline": config.name, "run_id": run_id,
                                                     "ds": extracted["ds"], "sha256": extracted["sha256"]})
        error.quarantined_to = str(target)
        error.args = (f"{error.args[0]}\nThe batch was copied to {target} (with reasons.json); "
                      f"the landing file {source} is untouched and production is unchanged. Ask the upstream owner "
                      f"for a corrected delivery (or fix {paths.PIPELINES_DIR / config.name}.yaml if a rule there "
                      "is wrong), then rerun this date.",)
        raise
    if origin == "inferred" and save_features:
        save_inferred_features(config, features)
    clean = result.frame
    columns = [*config.id_columns, *(f.name for f in features), config.target]
    clean[[c for c in columns if c in clean.columns]].to_parquet(workspace / "validated.parquet", index=False)
    _write(workspace, "features.json", {"origin": origin, "features": [f.model_dump() for f in features]})
    _write(workspace, "validation.json", {
        "rows": len(clean), "features": len(features), "feature_origin": origin, "passed": True,
        "reference_version": production, "warnings": result.warnings,
    })
    return {"rows": len(clean), "features": len(features), "feature_origin": origin, "passed": True,
            "warnings": len(result.warnings), "warning_messages": [w["message"] for w in result.warnings[:5]]}


def train(config: PipelineConfig, workspace: Path) -> dict:
    """Fit a candidate on a seeded split; write ``candidate.joblib``, ``holdout.parquet`` and the
    reference profile of the training rows."""
    import joblib
    import pandas as pd

    from include.ml.drift import ReferenceProfile, prediction_profile
    from include.ml.evaluate import model_scores
    from include.ml.train import fit, split

    frame = pd.read_parquet(workspace / "validated.parquet")
    features = _features(workspace)
    data = split(frame, config)
    started = time.perf_counter()
    model = fit(data.train, config, features)
    seconds = time.perf_counter() - started
    tmp = workspace / ".candidate.joblib.tmp"
    joblib.dump(model, tmp)
    tmp.replace(workspace / "candidate.joblib")
    data.holdout.to_parquet(workspace / "holdout.parquet", index=False)
    profile = ReferenceProfile(bins=config.drift.bins).fit(data.train, features)
    write_json_atomic(workspace / "reference_profile.json", profile.to_dict())
    # what the model predicts on rows it has not seen: the reference for prediction drift when scoring
    holdout_scores = model_scores(model, data.holdout[[f.name for f in features]], config.task)
    write_json_atomic(workspace / "prediction_profile.json", prediction_profile(holdout_scores, config.drift.bins))
    return _write(workspace, "training.json", {
        "estimator": config.model.estimator, "train_rows": len(data.train),
        "holdout_rows": len(data.holdout), "fit_seconds": round(seconds, 3), "seed": config.model.seed,
    })


def evaluate(config: PipelineConfig, workspace: Path) -> dict:
    """Score the candidate and the production model (the champion) on the same holdout rows, and
    apply the quality gates."""
    import joblib
    import pandas as pd

    from include.ml.evaluate import metric_inputs, paired_bootstrap, quality_gates, score

    holdout = pd.read_parquet(workspace / "holdout.parquet")
    names = [f.name for f in _features(workspace)]
    candidate_model = joblib.load(workspace / "candidate.joblib")
    candidate = score(candidate_model, holdout, config, names)
    registry = registry_for(config)
    champion_version = registry.production()
    champion, champion_note, interval = None, None, None
    if champion_version:
        champion_features = [f["name"] for f in registry.metadata(champion_version)["features"]]
        missing = sorted(set(champion_features) - set(holdout.columns))
        if missing:
            champion_note = f"production model needs columns missing from this batch: {missing}"
        else:
            champion_model = registry.load(champion_version)  # sha256 checked
            champion = score(champion_model, holdout, config, champion_features)
            positive = candidate_model.classes_[1] if config.task == "classification" else None
            interval = paired_bootstrap(
                holdout[config.target].to_numpy(), metric_inputs(candidate_model, holdout, config, names),
                metric_inputs(champion_model, holdout, config, champion_features), config, positive)
    gates = quality_gates(candidate[config.metric], champion[config.metric] if champion else None, config,
                          interval)
    return _write(workspace, "evaluation.json", {
        "metric": config.metric, "greater_is_better": config.greater_is_better,
        "candidate": candidate, "score": candidate[config.metric],
        "champion_version": champion_version, "champion": champion,
        "champion_score": champion[config.metric] if champion else None, "champion_note": champion_note,
        "gates": gates, "holdout_rows": len(holdout),
    })


def decide(config: PipelineConfig, workspace: Path) -> dict:
    """Drift check against the production model's reference profile, then the branch to take:
    ``reject`` when a quality gate fails, ``hold`` when the data drifted (or is too small to tell),
    else ``promote``. Writes ``drift.json`` (every feature's numbers) and ``decision.json``."""
    import pandas as pd

    from include.ml.drift import ReferenceProfile, drift_report

    evaluation = _read(workspace, "evaluation.json")
    registry = registry_for(config)
    production = registry.production()
    from include.ml.errors import PipelineError

    def no_reference(reason: str) -> dict:
        return {"verdict": "no_reference", "reasons": [reason], "drifted_features": [], "severe_features": [],
                "worst": []}

    if production is None:
        drift = no_reference("no production model yet: nothing to compare with")
    else:
        try:
            profile = ReferenceProfile.from_dict(registry.reference_profile(production))
        except PipelineError as error:  # a profile from an older release: hold, a person decides
            drift = no_reference(f"cannot compare with production {production}: {error}")
        else:
            report = drift_report(profile, pd.read_parquet(workspace / "validated.parquet"), config.drift)
            report.reference_version = production
            _write(workspace, "drift.json", report.to_dict())
            drift = report.summary()
    if drift["verdict"] == "no_reference":
        _write(workspace, "drift.json", drift)

    if production != evaluation["champion_version"]:
        branch, reasons = "hold", [f"production changed during this run ({evaluation['champion_version']} when the "
                                   f"candidate was evaluated, {production} now): it was not compared with the "
                                   "current model, a person decides"]
    elif not evaluation["gates"]["passed"]:
        branch, reasons = "reject", evaluation["gates"]["reasons"]
    elif drift["verdict"] in ("drift", "insufficient_data") or (production and drift["verdict"] == "no_reference"):
        branch, reasons = "hold", [f"input drift against production {production}: " + "; ".join(drift["reasons"])]
    else:
        branch, reasons = "promote", ["quality gates passed" + ("" if production else "; first model")]
        if drift["verdict"] == "warn":
            reasons.append("drift warning: " + "; ".join(drift["reasons"]))
    return _write(workspace, "decision.json", {
        "branch": branch, "reasons": reasons, "drift_verdict": drift["verdict"],
        "drifted_features": drift["drifted_features"], "drift": drift, "production_before": production,
        "score": evaluation["score"], "champion_score": evaluation["champion_score"], "metric": config.metric,
    })


def _code_version() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                             text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def register_candidate(config: PipelineConfig, workspace: Path, run_id: str, ds: str, decision: str,
                       bundle_version: str | None = None) -> str:
    """Register the run's candidate with its full metadata and return the version id (reused on retry).

    The code version is the DAG bundle's version when the orchestrator knows it (a versioned Git
    bundle pins DAGs and ML code together), else the repository's git commit."""
    evaluation = _read(workspace, "evaluation.json")
    metadata = {
        "pipeline": config.name, "run_id": run_id, "logical_date": ds, "decision": decision,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": config.task, "metric": config.metric, "metrics": evaluation["candidate"],
        "champion": {"version": evaluation["champion_version"], "metrics": evaluation["champion"]},
        "gates": evaluation["gates"], "reasons": _read(workspace, "decision.json")["reasons"],
        # the "blessing": what was decided, on which evidence
        "promotion_record": {
            "decision": decision, "metric": config.metric, "candidate_score": evaluation["score"],
            "champion_version": evaluation["champion_version"], "champion_score": evaluation["champion_score"],
            "interval": evaluation["gates"].get("interval"), "gates": config.gates.model_dump(),
            "drift_verdict": _read(workspace, "decision.json")["drift_verdict"],
            "reasons": _read(workspace, "decision.json")["reasons"],
        },
        "data": _read(workspace, "extract.json"), "training": _read(workspace, "training.json"),
        "features": _read(workspace, "features.json")["features"],
        "config": config.model_dump(mode="json"), "config_hash": config.config_hash(),
        "seed": config.model.seed, "code_version": bundle_version or _code_version(),
        "code_version_source": "dag_bundle" if bundle_version else "git",
        "python": platform.python_version(), "libraries": _library_versions(),
        "prediction_profile": (_read(workspace, "prediction_profile.json")
                               if (workspace / "prediction_profile.json").exists() else None),
    }
    return registry_for(config).register(
        workspace / "candidate.joblib", metadata, _read(workspace, "reference_profile.json"))


def conclude(config: PipelineConfig, workspace: Path, branch: str, run_id: str, ds: str,
             bundle_version: str | None = None) -> dict:
    """Carry out a branch: register the candidate, and for ``promote`` switch production to it.

    Idempotent: a retry of this run reuses the version it registered and finishes a switch it had
    not made yet; a rerun of the same logical date on the same data and config (another run id)
    reuses the version registered then and switches nothing.
    """
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; expected one of {BRANCHES}")
    decision = _read(workspace, "decision.json")
    decided = {"promote": "promoted", "hold": "held", "reject": "rejected"}[branch]
    registry = registry_for(config)
    extracted = _read(workspace, "extract.json")
    earlier = None if registry.find_by_run(run_id) else registry.find_equivalent(
        ds, extracted["sha256"], config.config_hash())
    version = earlier or register_candidate(config, workspace, run_id, ds, decided, bundle_version)
    before = decision["production_before"]
    switched = False
    if branch == "promote" and earlier is None and registry.production() != version:
        registry.set_production(version, expected=before, actor=run_id,
                                reason=f"training run {run_id}: " + "; ".join(decision["reasons"]))
        switched = True
    return _write(workspace, "outcome.json", {
        "pipeline": config.name, "run_id": run_id, "logical_date": ds, "branch": branch,
        "version": version, "reused_from_earlier_run": earlier is not None, "switched": switched,
        "production_before": before, "production_after": registry.production(),
        "metric": config.metric, "score": decision["score"], "champion_score": decision["champion_score"],
        "reasons": decision["reasons"], "drift_verdict": decision["drift_verdict"],
        "drifted_features": decision["drifted_features"],
    })


def report(config: PipelineConfig, workspace: Path, run_id: str, ds: str) -> dict:
    """Summarise the run into ``summary.json`` and append it to the pipeline's run history."""
    outcome = _read(workspace, "outcome.json")
    drift = _read(workspace, "drift.json") if (workspace / "drift.json").exists() else {}
    settings = config.drift
    by_feature = {}
    for name, result in drift.get("features", {}).items():
        statistic = settings.numeric_statistic if result["type"] == "numeric" else settings.categorical_statistic
        by_feature[name] = {"statistic": statistic, "value": result["statistics"].get(statistic),
                            "level": result["level"]}
    summary = {
        **outcome,
        "rows": _read(workspace, "extract.json")["rows"],
        "validation_warnings": len(_read(workspace, "validation.json").get("warnings", [])),
        "data_sha256": _read(workspace, "extract.json")["sha256"],
        "drift_by_feature": by_feature,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "workspace": str(workspace),
    }
    _write(workspace, "summary.json", summary)
    history = config.registry_path / "history.jsonl"
    history.parent.mkdir(parents=True, exist_ok=True)
    with open(history, "a") as handle:
        handle.write(json.dumps(summary, default=str) + "\n")
    return summary


def run_history(config: PipelineConfig) -> list[dict]:
    """Run summaries oldest first; a rerun of the same run id replaces its earlier line."""
    from include.ml.registry import read_jsonl_latest

    return read_jsonl_latest(config.registry_path / "history.jsonl", ("run_id",))
