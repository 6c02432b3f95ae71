"""The steps of one training run, in order: each reads the records of the steps before it from the
run's workspace (:class:`~include.ml.records.RunWorkspace`), writes its own, and returns its plain
dict form (what a DAG task passes through XCom).

    extract -> validate -> train -> evaluate -> drift_check -> promote | hold | reject -> report

:data:`STEPS` is that order; the training DAG, the command line and the tests run it through
:func:`run_step` and :func:`run_steps`.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import platform
import subprocess
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

from include.ml import paths, signing, storage
from include.ml.config import DriftConfig, FeatureSpec, PipelineConfig
from include.ml.decision import drift_hold_verdict
from include.ml.errors import ArtifactIntegrityError, BatchValidationError
from include.ml.presentation import number
from include.ml.records import (
    BRANCHES,
    DECIDED,
    FAILED,
    DecisionRecord,
    EvaluationRecord,
    ExtractRecord,
    FailedRun,
    FeatureDrift,
    FeaturesRecord,
    GateResult,
    OutcomeRecord,
    RunSummary,
    RunWorkspace,
    TrainingRecord,
    ValidationRecord,
)
from include.ml.registry import ModelRegistry
from include.ml.user_code import check_model, code_record

# What each step read, found, trained and decided, in plain words: Airflow copies this library logger
# into the task log, the command line prints it.
log = logging.getLogger(__name__)

LIBRARIES = ("scikit-learn", "pandas", "numpy", "joblib", "pandera", "pyarrow")
BRANCH_STEP = "conclude"  # the place of the branch (promote, hold or reject) in STEPS
STEPS = ("extract", "validate", "train", "evaluate", "drift_check", BRANCH_STEP, "report")


def _workspace(workspace: RunWorkspace | Path) -> RunWorkspace:
    return workspace if isinstance(workspace, RunWorkspace) else RunWorkspace(workspace)


def _candidate_context(config: PipelineConfig, ws: RunWorkspace) -> dict:
    return {"pipeline": config.name, "workspace": ws.run_name, "file": ws.CANDIDATE}


def write_candidate(config: PipelineConfig, ws: RunWorkspace, model) -> None:
    """Pickle the candidate and sign its bytes with the pipeline and the run's workspace."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    payload = buffer.getvalue()
    signature = signing.keyring().sign("candidate", _candidate_context(config, ws), payload)
    storage.write_bytes(ws.path(ws.CANDIDATE), payload)
    ws.write_json(ws.CANDIDATE_SIGNATURE, signature)


def verified_candidate(config: PipelineConfig, ws: RunWorkspace) -> bytes:
    """The candidate's bytes, read once and checked against the signature train wrote;
    :class:`ArtifactIntegrityError` (nothing unpickled) when they differ or the signature is missing."""
    payload = ws.path(ws.CANDIDATE).read_bytes()
    problem = signing.keyring().problem(ws.read_json_or_none(ws.CANDIDATE_SIGNATURE), "candidate",
                                        _candidate_context(config, ws), payload)
    if problem:
        raise ArtifactIntegrityError(
            f"the candidate model {ws.path(ws.CANDIDATE)} is refused: {problem}. It was replaced after training (or "
            "copied from another run) and will not be loaded or registered; production is unchanged. Keep the "
            "workspace for investigation and rerun the training for this date.")
    return payload


def _load_candidate(payload: bytes):
    import joblib

    return joblib.load(io.BytesIO(payload))


def registry_for(config: PipelineConfig) -> ModelRegistry:
    """The model registry of a pipeline."""
    return ModelRegistry(config.registry_path, config.name)


def extract(config: PipelineConfig, workspace: RunWorkspace | Path, ds: str, source: Path | None = None,
            source_url: str | None = None) -> dict:
    """Read the landing batch for logical date ``ds`` (or the file ``source``), or with a ``sql`` source the
    rows its query returns through ``source_url`` (default: the environment variable ``source.url_env``,
    :mod:`include.ml.sql_source`); write it to the workspace; return its fingerprint (:class:`ExtractRecord`;
    for a query, its sha256 is the rows' order-free fingerprint)."""
    from include.ml.extract import fingerprint, read_batch

    ws = _workspace(workspace)
    if config.source.kind == "sql" and source is None:
        from include.ml.sql_source import database_url, read_query_batch

        source, frame = read_query_batch(database_url(config.source, source_url), config.source, ds, ws.folder,
                                         config.source.max_bytes)
    else:
        source = source or config.source.path_for(ds)
        frame = read_batch(source, getattr(config.source, "file_format", None), config.source.max_bytes)
    # Keep text as text: a stray word in a numeric column is validation's to report, not the writer's.
    text_columns = {c: "string" for c in frame.columns if frame[c].dtype == object}
    storage.write_with(ws.path(ws.BATCH), lambda tmp: frame.astype(text_columns).to_parquet(tmp, index=False),
                       durable=False)
    record = ws.write(ExtractRecord(ds=ds, **fingerprint(source, frame).to_dict()))
    log.info("read the batch of %s: %s, %d rows x %d columns, %d bytes, sha256 %s", ds, record.path, record.rows,
             record.columns, record.bytes, record.sha256)
    return record.to_dict()


def resolve_features(config: PipelineConfig, frame) -> tuple[list[FeatureSpec], str]:
    """The features to use and where they came from: the config, the registry's saved spec
    (``registry``), or inferred from ``frame`` (``inferred``; see :func:`save_inferred_features`)."""
    if isinstance(config.features, list):
        return list(config.features), "config"
    saved = config.registry_layout.feature_spec
    if saved.exists():
        return [FeatureSpec.model_validate(f) for f in storage.read_json(saved)], "registry"
    from include.ml.validate import infer_features

    return infer_features(frame, config), "inferred"


def save_inferred_features(config: PipelineConfig, features: list[FeatureSpec]) -> None:
    """Fix a pipeline's inferred features in its registry, so later batches are held to them."""
    storage.write_json(config.registry_layout.feature_spec, [f.model_dump() for f in features])


def check_with_production(config: PipelineConfig, frame):
    """Validate ``frame`` against the config and the production model's training data (ranges,
    levels). Returns ``(ValidationResult, features, feature origin, production version)``;
    raises :class:`BatchValidationError` on errors."""
    from include.ml.validate import check_batch

    features, origin = resolve_features(config, frame)
    production = registry_for(config).production()
    reference = registry_for(config).reference_profile(production) if production else None
    return check_batch(frame, config, features, reference), features, origin, production


def validate(config: PipelineConfig, workspace: RunWorkspace | Path, run_id: str = "manual",
             save_features: bool = True) -> dict:
    """Validate the extracted batch; write the validated rows, :class:`FeaturesRecord` and
    :class:`ValidationRecord`. A failing batch is quarantined (copied with its reasons) and
    :class:`BatchValidationError` is raised. When ``save_features``, features inferred from the first
    batch that passes are saved to the registry, and the validated rows are archived there for later
    training windows (:func:`include.ml.window.archive_batch`). Returns :meth:`ValidationRecord.brief`."""
    import pandas as pd

    from include.ml.validate import quarantine
    from include.ml.window import archive_batch

    ws = _workspace(workspace)
    extracted = ws.read(ExtractRecord)
    frame = pd.read_parquet(ws.path(ws.BATCH))
    try:
        result, features, origin, production = check_with_production(config, frame)
    except BatchValidationError as error:
        source = Path(extracted.path)
        target = paths.quarantined_batch_dir(config.name, extracted.ds, run_id)
        quarantine(source, target, error.failures, {"pipeline": config.name, "run_id": run_id,
                                                     "ds": extracted.ds, "sha256": extracted.sha256},
                   max_bytes=config.source.max_bytes)
        error.quarantined_to = str(target)
        error.args = (f"{error.args[0]}\nThe batch was copied to {target} (with reasons.json); "
                      f"the landing file {source} is untouched and production is unchanged. Ask the upstream owner "
                      f"for a corrected delivery (or fix {paths.PIPELINES_DIR / config.name}.yaml if a rule there "
                      "is wrong), then rerun this date.",)
        log.warning("validation refused the batch of %s (%d rows): %d broken rule(s); copied to quarantine %s",
                    extracted.ds, extracted.rows, len(error.failures), target)
        raise
    notes = []
    if origin == "inferred":
        from include.ml.validate import infer

        notes = infer(frame, config).notes  # what inference left out, and why
        if save_features:
            save_inferred_features(config, features)
    clean = result.frame
    columns = [*config.id_columns, *(f.name for f in features), config.target]
    validated = clean[[c for c in columns if c in clean.columns]]
    storage.write_with(ws.path(ws.VALIDATED), lambda tmp: validated.to_parquet(tmp, index=False), durable=False)
    if save_features:
        archive_batch(config, extracted, validated)
    ws.write(FeaturesRecord(origin=origin, features=[f.model_dump() for f in features]))
    record = ws.write(ValidationRecord(rows=len(clean), features=len(features), feature_origin=origin,
                                       reference_version=production, warnings=result.warnings,
                                       unlabelled_rows=result.unlabelled_rows, inference_notes=notes))
    log.info("validation passed: %d of %d rows kept (%d without a label, not trained on), %d features (%s), "
             "checked against %s; %d warning(s)%s", record.rows, extracted.rows,
             record.unlabelled_rows, record.features, _ORIGIN_WORDS[origin],
             f"production {production}'s training data" if production else "the config only (no production model)",
             len(record.warnings), "".join(f"\n  warning: {w.get('message')}" for w in record.warnings[:5]))
    for note in notes:
        log.info("feature inference: %s", note)
    return record.brief()


_ORIGIN_WORDS = {"config": "listed in the config", "registry": "fixed in the registry from the first batch",
                 "inferred": "inferred from this batch"}


def train(config: PipelineConfig, workspace: RunWorkspace | Path) -> dict:
    """Fit a candidate on the training window (the run's validated rows and the archived batches of the
    ``model.window_batches - 1`` most recent earlier dates, :func:`include.ml.window.training_window`),
    split by row hash (:func:`include.ml.fitting.split`); write the candidate model, the holdout rows,
    the reference profile of the training rows, the prediction profile of the holdout and
    :class:`TrainingRecord` (with every batch used)."""
    import pandas as pd

    from include.ml.drift import ReferenceProfile, prediction_profile
    from include.ml.evaluate import fit_baseline, prediction_values
    from include.ml.fitting import fit, split
    from include.ml.window import training_window

    ws = _workspace(workspace)
    window = training_window(config, ws.read(ExtractRecord), pd.read_parquet(ws.path(ws.VALIDATED)))
    features = ws.read(FeaturesRecord).specs()
    data = split(window.rows, config)
    started = time.perf_counter()
    model = fit(data.train, config, features)
    seconds = time.perf_counter() - started
    write_candidate(config, ws, model)
    storage.write_with(ws.path(ws.HOLDOUT), lambda tmp: data.holdout.to_parquet(tmp, index=False), durable=False)
    profile = ReferenceProfile(bins=config.drift.bins).fit(data.train, features)
    ws.write_json(ws.REFERENCE_PROFILE, profile.to_dict())
    # what the model predicts on rows it has not seen: the reference for prediction drift when scoring
    holdout_values = prediction_values(model, data.holdout[[f.name for f in features]], config.task,
                                       config.positive_label)
    ws.write_json(ws.PREDICTION_PROFILE, prediction_profile(holdout_values, config.drift.bins))
    log.info("trained %s on %d rows in %.2f s (seed %d), %d rows held out to judge it; window: %d of %d batch(es)%s%s",
             config.model.described, len(data.train), seconds, config.model.seed, len(data.holdout),
             len(window.batches), config.model.window_batches,
             f" ({', '.join(b.ds for b in window.batches)})" if window.batches else "",
             "".join(f"\n  left out of the window: {reason}" for reason in window.skipped))
    return ws.write(TrainingRecord(
        estimator=config.model.described, train_rows=len(data.train), holdout_rows=len(data.holdout),
        fit_seconds=round(seconds, 3), seed=config.model.seed,
        baseline=fit_baseline(data.train[config.target], config.task), window_batches=config.model.window_batches,
        window_found=len(window.batches), window=window.batches, window_sha256=window.sha256,
        window_skipped=window.skipped, holdout_key=data.key)).to_dict()


def describe_candidate(config: PipelineConfig, ws: RunWorkspace, model, holdout, names: list[str]) -> None:
    """Write what the registry keeps of the candidate besides its metrics: the calibration of its
    probabilities on the holdout (classifiers, :mod:`include.ml.estimation`) and its permutation
    importance there (:mod:`include.ml.importance`)."""
    from include.ml.estimation import fit_calibration
    from include.ml.importance import permutation_importance

    if config.task == "classification":
        ws.write_json(ws.CALIBRATION, fit_calibration(holdout[config.target].to_numpy(),
                                                      model.predict_proba(holdout[names]), list(model.classes_)))
    ws.write_json(ws.IMPORTANCE, permutation_importance(model, holdout, config, names))


def evaluate(config: PipelineConfig, workspace: RunWorkspace | Path) -> dict:
    """Measure the candidate and the production model (the champion) on the same holdout rows, and
    apply the quality gates; write :class:`EvaluationRecord`."""
    import pandas as pd

    from include.ml.evaluate import baseline_score, champion_comparison, fit_baseline, holdout_metrics, quality_gates
    from include.ml.leakage import leakage_reasons

    ws = _workspace(workspace)
    holdout = pd.read_parquet(ws.path(ws.HOLDOUT))
    specs = ws.read(FeaturesRecord).specs()
    names = [f.name for f in specs]
    candidate_model = _load_candidate(verified_candidate(config, ws))  # signature checked first
    candidate = holdout_metrics(candidate_model, holdout, config, names)
    describe_candidate(config, ws, candidate_model, holdout, names)  # calibration and importance
    registry = registry_for(config)
    champion_version = registry.production()
    champion, champion_note, interval = None, None, None
    if champion_version:
        champion_features = [f["name"] for f in registry.metadata(champion_version)["features"]]
        missing = sorted(set(champion_features) - set(holdout.columns))
        if missing:
            champion_note = f"production model needs columns missing from this batch: {missing}"
        else:
            champion_model = registry.load(champion_version)  # sha256 and signature checked
            champion = holdout_metrics(champion_model, holdout, config, champion_features)
            interval = champion_comparison(candidate_model, champion_model, holdout, config, names, champion_features)
    trained = ws.read(TrainingRecord).baseline  # None in a workspace of an older release: the holdout's own
    fitted = trained or fit_baseline(holdout[config.target], config.task)
    classes = list(candidate_model.classes_) if config.task == "classification" else None
    baseline = {"strategy": fitted["strategy"], "fitted_on": "training rows" if trained else "holdout rows",
                "score": baseline_score(fitted, holdout[config.target].to_numpy(), config, classes)}
    gates = quality_gates(candidate[config.metric], champion[config.metric] if champion else None, config,
                          interval, baseline["score"])
    leakage = leakage_reasons(holdout, specs, config, candidate[config.metric])
    log.info("evaluated on %d holdout rows: candidate %s %s, production %s, baseline (%s) %s; quality gates %s%s%s",
             len(holdout), config.metric, number(candidate[config.metric]),
             f"{champion_version} {number(champion[config.metric])}" if champion
             else f"{champion_version}: {champion_note}" if champion_note else "none yet",
             baseline["strategy"], number(baseline["score"]), "passed" if gates["passed"] else "FAILED",
             "".join(f"\n  gate: {reason}" for reason in gates.get("reasons", [])),
             "".join(f"\n  possible leakage: {reason}" for reason in leakage))
    return ws.write(EvaluationRecord(
        metric=config.metric, greater_is_better=config.greater_is_better, candidate=candidate,
        score=candidate[config.metric], champion_version=champion_version, champion=champion,
        champion_score=champion[config.metric] if champion else None, champion_note=champion_note,
        gates=GateResult.model_validate(gates), holdout_rows=len(holdout), baseline=baseline,
        leakage=leakage)).to_dict()


def critical_settings(config: PipelineConfig, production: str) -> DriftConfig:
    """The drift settings with ``drift.critical_top_features`` applied: the production version's most
    important features (its stored permutation importance) added to ``drift.critical_features``."""
    from include.ml.importance import top_features

    count = config.drift.critical_top_features
    top = top_features(registry_for(config).metadata(production).get("importance"), count) if count else []
    extra = [name for name in top if name not in config.drift.critical_features]
    return config.drift.model_copy(update={"critical_features": [*config.drift.critical_features, *extra]})


def _no_reference(reason: str) -> dict:
    return {"verdict": "no_reference", "reasons": [reason], "drifted_features": [], "severe_features": [],
            "worst": []}


def drift_check(config: PipelineConfig, workspace: RunWorkspace | Path) -> dict:
    """Drift check against the production model's reference profile, then the branch to take:
    ``reject`` when a quality gate fails, ``hold`` on possible target leakage or when the data drifted
    (or is too small to tell), else ``promote``. Writes the full drift report (every feature's numbers) and
    :class:`DecisionRecord`."""
    import pandas as pd

    from include.ml.drift import ReferenceProfile, drift_report
    from include.ml.errors import PipelineError
    from include.ml.importance import ranking

    ws = _workspace(workspace)
    evaluation = ws.read(EvaluationRecord)
    registry = registry_for(config)
    production = registry.production()
    if production is None:
        drift = _no_reference("no production model yet: nothing to compare with")
    else:
        try:
            profile = ReferenceProfile.from_dict(registry.reference_profile(production))
        except PipelineError as error:  # a profile from an older release: hold, a person decides
            drift = _no_reference(f"cannot compare with production {production}: {error}")
        else:
            report = drift_report(profile, pd.read_parquet(ws.path(ws.VALIDATED)),
                                  critical_settings(config, production))
            report.reference_version = production
            report.importance_rank = ranking(registry.metadata(production).get("importance"))
            ws.write_json(ws.DRIFT, report.to_dict())
            drift = report.summary()
    if drift["verdict"] == "no_reference":
        ws.write_json(ws.DRIFT, drift)

    policy = None  # the drift policy's verdict, for a drift hold whose gates passed
    if production != evaluation.champion_version:
        branch, reasons = "hold", [f"production changed during this run ({evaluation.champion_version} when the "
                                   f"candidate was evaluated, {production} now): it was not compared with the "
                                   "current model, a person decides"]
    elif not evaluation.gates.passed:
        branch, reasons = "reject", evaluation.gates.reasons
    elif evaluation.leakage:  # after the gates: a candidate that fails one is rejected, leaky or not
        branch, reasons = "hold", evaluation.leakage
    elif drift["verdict"] in ("drift", "insufficient_data") or (production and drift["verdict"] == "no_reference"):
        branch, reasons = "hold", [f"input drift against production {production}: " + "; ".join(drift["reasons"])]
        policy = drift_hold_verdict(config, evaluation.gates.interval)
        # hold and approve keep the drift's reasons as they are; promote_if_better says what it compared
        branch, reasons = policy.branch, [*reasons, policy.reason] if policy.compared else reasons
    else:
        branch, reasons = "promote", ["quality gates passed" + ("" if production else "; first model")]
        if drift["verdict"] == "warn":
            reasons.append("drift warning: " + "; ".join(drift["reasons"]))
    log.info("drift against %s: %s%s", f"production {production}" if production else "no production model",
             drift["verdict"], f" (drifted: {', '.join(drift['drifted_features'])})" if drift["drifted_features"]
             else f" ({'; '.join(drift['reasons'])})" if drift["verdict"] == "no_reference" else "")
    log.info("decision: %s, because %s", branch, "; ".join(reasons))
    return ws.write(DecisionRecord(
        branch=branch, reasons=reasons, drift_verdict=drift["verdict"], drifted_features=drift["drifted_features"],
        drift=drift, production_before=production, score=evaluation.score, champion_score=evaluation.champion_score,
        metric=config.metric, drift_policy=config.decision.drift_policy if policy else None,
        ask=bool(policy and policy.ask), promoted_by_policy=bool(policy and policy.branch == "promote"),
        policy_reason=policy.reason if policy else None)).to_dict()


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


def register_candidate(config: PipelineConfig, workspace: RunWorkspace | Path, run_id: str, ds: str, decision: str,
                       bundle_version: str | None = None) -> str:
    """Register the run's candidate with its full metadata and return the version id (reused on retry).

    The code version is the DAG bundle's version when the orchestrator knows it (a versioned Git
    bundle pins DAGs and ML code together), else the repository's git commit. The candidate is read
    once and its signature checked; those bytes are the ones registered."""
    from include.ml.evaluate import class_metadata

    ws = _workspace(workspace)
    payload = verified_candidate(config, ws)
    evaluation, decided = ws.read(EvaluationRecord), ws.read(DecisionRecord)
    metadata = {
        "pipeline": config.name, "run_id": run_id, "logical_date": ds, "decision": decision,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": config.task, "metric": config.metric, "metrics": evaluation.candidate,
        "champion": {"version": evaluation.champion_version, "metrics": evaluation.champion},
        "gates": evaluation.gates.model_dump(mode="json"), "reasons": decided.reasons,
        # the "blessing": what was decided, on which evidence
        "promotion_record": {
            "decision": decision, "metric": config.metric, "candidate_score": evaluation.score,
            "champion_version": evaluation.champion_version, "champion_score": evaluation.champion_score,
            "interval": evaluation.gates.interval, "gates": config.gates.model_dump(),
            "drift_verdict": decided.drift_verdict, "reasons": decided.reasons,
            "drift_policy": decided.drift_policy, "decision_requested": decided.ask,
            "promoted_by_policy": decided.promoted_by_policy, "policy_reason": decided.policy_reason,
            "baseline": evaluation.baseline, "leakage": evaluation.leakage,
        },
        "data": ws.read(ExtractRecord).to_dict(), "training": ws.read(TrainingRecord).to_dict(),
        "features": ws.read(FeaturesRecord).features,
        "config": config.model_dump(mode="json"), "config_hash": config.config_hash(),
        "seed": config.model.seed, "code_version": bundle_version or _code_version(),
        "model_code": code_record(config, bundle_version or _code_version()),  # which code built it
        "code_version_source": "dag_bundle" if bundle_version else "git",
        "python": platform.python_version(), "libraries": _library_versions(),
        "prediction_profile": ws.read_json_or_none(ws.PREDICTION_PROFILE),
        "calibration": ws.read_json_or_none(ws.CALIBRATION), "importance": ws.read_json_or_none(ws.IMPORTANCE),
        **class_metadata(_load_candidate(payload), config),  # classes, positive_label
    }
    return registry_for(config).register(payload, metadata, ws.read_json(ws.REFERENCE_PROFILE))


def conclude(config: PipelineConfig, workspace: RunWorkspace | Path, branch: str, run_id: str, ds: str,
             bundle_version: str | None = None) -> dict:
    """Carry out a branch: register the candidate, and for ``promote`` switch production to it;
    write :class:`OutcomeRecord`.

    Idempotent: a retry of this run reuses the version it registered and finishes a switch it had
    not made yet; a rerun of the same logical date on the same data and config (another run id)
    reuses the version registered then and switches nothing.
    """
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; expected one of {BRANCHES}")
    ws = _workspace(workspace)
    decision = ws.read(DecisionRecord)
    registry = registry_for(config)
    trained = ws.read(TrainingRecord)  # keyed on the window's batches (one batch: its own sha256, as before)
    earlier = None if registry.find_by_run(run_id) else registry.find_equivalent(
        ds, trained.window_sha256 or ws.read(ExtractRecord).sha256, config.config_hash())
    version = earlier or register_candidate(config, ws, run_id, ds, DECIDED[branch], bundle_version)
    before = decision.production_before
    switched = False
    if branch == "promote" and earlier is None and registry.production() != version:
        registry.set_production(version, expected=before, actor=run_id,
                                reason=f"training run {run_id}: " + "; ".join(decision.reasons))
        switched = True
    after = registry.production()
    log.info("%s: %s %s; production %s", branch, version,
             "reused from an earlier run of this date on the same data (nothing registered)" if earlier
             else "registered", f"switched from {before or 'none'} to {after}" if switched else f"stays {after}")
    return ws.write(OutcomeRecord(
        pipeline=config.name, run_id=run_id, logical_date=ds, branch=branch, version=version,
        reused_from_earlier_run=earlier is not None, switched=switched, production_before=before,
        production_after=after, metric=config.metric, score=decision.score,
        champion_score=decision.champion_score, reasons=decision.reasons, drift_verdict=decision.drift_verdict,
        drifted_features=decision.drifted_features, drift_policy=decision.drift_policy,
        decision_requested=branch == "hold" and decision.ask,
        promoted_by_policy=branch == "promote" and decision.promoted_by_policy)).to_dict()


def report(config: PipelineConfig, workspace: RunWorkspace | Path, run_id: str, ds: str) -> dict:
    """Summarise the run into :class:`RunSummary` and append it to the pipeline's run history."""
    ws = _workspace(workspace)
    outcome = ws.read(OutcomeRecord)
    drift = ws.read_json_or_none(ws.DRIFT) or {}
    settings = config.drift
    by_feature = {}
    for name, result in drift.get("features", {}).items():
        statistic = settings.numeric_statistic if result["type"] == "numeric" else settings.categorical_statistic
        by_feature[name] = FeatureDrift(statistic=statistic, value=result["statistics"].get(statistic),
                                        level=result["level"])
    extracted, validation = ws.read(ExtractRecord), ws.read(ValidationRecord)
    summary = ws.write(RunSummary(
        **outcome.model_dump(), rows=extracted.rows, unlabelled_rows=validation.unlabelled_rows,
        validation_warnings=len(validation.warnings), data_sha256=extracted.sha256,
        drift_by_feature=by_feature, finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        workspace=str(ws.folder)))
    storage.append_jsonl(config.registry_layout.run_history, summary.to_dict())
    log.info("run %s of %s: %s %s (%s %s), production %s; written to the run history %s", run_id, ds, summary.branch,
             summary.version, summary.metric, number(summary.score), summary.production_after,
             config.registry_layout.run_history)
    return summary.to_dict()


ERROR_LINE_CHARS = 300  # a failed run's error in the history: its first line, at most this long


def record_failure(config: PipelineConfig, run_id: str, ds: str | None, step: str,
                   error: BaseException | str) -> dict:
    """Record that run ``run_id`` failed at ``step``: :class:`FailedRun` in its workspace and as a
    line of the run history (a later successful rerun of the run id replaces that line). The
    quarantine folder is taken from a :class:`BatchValidationError` (or the error it wraps)."""
    causes = [error, getattr(error, "__cause__", None)]
    quarantined = next((c.quarantined_to for c in causes if getattr(c, "quarantined_to", None)), None)
    cause = next((c for c in reversed(causes) if isinstance(c, BaseException)), None)
    lines = str(error).strip().splitlines()
    first = (lines[0] if lines else type(error).__name__ if isinstance(error, BaseException) else "unknown error")
    first = first if len(first) <= ERROR_LINE_CHARS else first[:ERROR_LINE_CHARS - 1] + "…"
    reasons = [f"failed at {step}: {first}"]
    if quarantined:
        reasons.append(f"the batch was quarantined to {quarantined}")
    ws = RunWorkspace(paths.workspace_dir(config.name, run_id))
    record = ws.write(FailedRun(
        pipeline=config.name, run_id=run_id, logical_date=ds, step=step, error=first,
        error_type=type(cause).__name__ if cause is not None else None, quarantined_to=quarantined,
        reasons=reasons, finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), workspace=str(ws.folder)))
    storage.append_jsonl(config.registry_layout.run_history, record.to_dict())
    return record.to_dict()


def run_history(config: PipelineConfig) -> list[dict]:
    """Every run's history line oldest first: a :class:`RunSummary`, or a :class:`FailedRun` (``state``
    ``failed``); a rerun of the same run id replaces its earlier line."""
    return storage.read_jsonl_latest(config.registry_layout.run_history, ("run_id",))


def is_failed(entry: dict) -> bool:
    """Whether a run history line records a failed run."""
    return entry.get("state") == FAILED


def run_summaries(config: PipelineConfig) -> list[RunSummary]:
    """The finished runs of :func:`run_history` as typed records (failed runs: :func:`failed_runs`)."""
    return [RunSummary.model_validate(entry) for entry in run_history(config) if not is_failed(entry)]


def failed_runs(config: PipelineConfig) -> list[FailedRun]:
    """The failed runs of :func:`run_history` (those no successful rerun replaced) as typed records."""
    return [FailedRun.model_validate(entry) for entry in run_history(config) if is_failed(entry)]


def run_step(name: str, config: PipelineConfig, workspace: RunWorkspace | Path, run_id: str, ds: str,
             branch: str | None = None, bundle_version: str | None = None, source: Path | None = None,
             source_url: str | None = None) -> dict:
    """Run the step ``name`` of :data:`STEPS` (``conclude`` takes the ``branch`` to carry out; ``extract``
    a sql source's ``source_url``)."""
    calls = {
        "extract": lambda: extract(config, workspace, ds, source=source, source_url=source_url),
        "validate": lambda: validate(config, workspace, run_id=run_id),
        "train": lambda: train(config, workspace),
        "evaluate": lambda: evaluate(config, workspace),
        "drift_check": lambda: drift_check(config, workspace),
        BRANCH_STEP: lambda: conclude(config, workspace, branch or "", run_id, ds, bundle_version=bundle_version),
        "report": lambda: report(config, workspace, run_id, ds),
    }
    if name not in calls:
        raise ValueError(f"unknown step {name!r}; the steps are {STEPS}")
    if name == STEPS[0]:  # the model code imported and called before any data is read (ModelCodeError: no retry)
        check_model(config)
    return calls[name]()


def run_steps(config: PipelineConfig, run_id: str, ds: str, until: str = STEPS[-1],
              workspace: RunWorkspace | Path | None = None, source: Path | None = None,
              source_url: str | None = None) -> dict[str, dict]:
    """Run :data:`STEPS` in order in one process, as the training DAG does (the branch is the one
    ``drift_check`` chose), up to and including ``until``; return each step's result by name."""
    workspace = workspace or paths.workspace_dir(config.name, run_id)
    results: dict[str, dict] = {}
    for name in STEPS[:STEPS.index(until) + 1]:
        branch = results.get("drift_check", {}).get("branch")
        results[name] = run_step(name, config, workspace, run_id, ds, branch=branch, source=source,
                                 source_url=source_url)
    return results
