"""Realised performance: join delivered labels with the stored predictions and measure the primary
metric per model version and scoring date, the live error rate that input drift only hints at.

Labels land in ``performance.labels_dir`` as files named ``<delivery date>*.csv|parquet`` with the id
columns and the target. Predictions are the batch-scoring outputs of the last
``performance.lookback_days`` days. Each (model version, scoring date) group becomes one record in the
pipeline's monitoring history (``performance.jsonl`` in the registry), with its status:

- ``below_floor``: worse than the worst acceptable value (``performance.floor``, else ``gates.min_score``);
- ``below_validation``: worse than the version's validation score by more than ``performance.max_drop``;
- ``too_few_rows``: under ``performance.min_rows`` labelled rows (recorded, never alerts);
- ``ok`` otherwise.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from include.ml import storage
from include.ml.config import PipelineConfig
from include.ml.errors import BatchReadError, InputDataError
from include.ml.evaluate import is_binary, metric_value, positive_class, proba_classes, proba_column
from include.ml.extract import check_csv_header, check_parquet_schema, check_shape, open_listed_delivery, parser_message
from include.ml.feature_rules import level_label
from include.ml.paths import labels_dir, predictions_dir
from include.ml.registry import ModelRegistry
from include.ml.scoring import is_predictions_file

BREACHES = ("below_floor", "below_validation")


def label_files(config: PipelineConfig, ds: str) -> list[Path]:
    """The label files delivered on ``ds``: ``<ds>.csv``, ``<ds>-anything.parquet`` and so on, sorted.

    Every entry named like a label file is listed, whatever it is: :func:`read_labels` refuses a link,
    folder, pipe or device by name rather than leaving it out silently (or following a link)."""
    folder = labels_dir(config)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(ds) and p.suffix in {".csv", ".parquet", ".pq"})


def read_labels(config: PipelineConfig, files: list[Path]) -> pd.DataFrame:
    """The id columns and target of ``files``, one row per id (the last delivery of an id wins).
    :class:`InputDataError` names a file that lacks a column."""
    if not config.id_columns:
        raise InputDataError(f"pipeline {config.name!r} has no id_columns: labels cannot be matched to predictions; "
                             f"declare id_columns in include/pipelines/{config.name}.yaml")
    wanted = [*config.id_columns, config.target]
    frames = []
    for path in files:
        frame = _read_label_file(path, config.source.max_bytes)
        missing = sorted(set(wanted) - set(frame.columns))
        if missing:
            raise InputDataError(f"labels file {path} lacks column(s) {missing}; a labels file holds the id "
                                 f"columns {config.id_columns} and the target {config.target!r}")
        frames.append(frame[wanted])
    if not frames:
        return pd.DataFrame(columns=wanted)
    labels = pd.concat(frames, ignore_index=True).dropna(subset=[config.target])
    for column in config.id_columns:
        labels[column] = labels[column].map(level_label)
    return labels.drop_duplicates(subset=config.id_columns, keep="last")


def _read_label_file(path: Path, max_bytes: int) -> pd.DataFrame:
    """One labels file, opened once by :func:`include.ml.extract.open_delivered` (a regular file inside
    its folder, at most ``max_bytes``, not compressed) and held to the same shape rules as a batch."""
    where = f"labels file {path}"
    handle, file_format = open_listed_delivery(path, max_bytes, where)
    with handle:
        try:
            if file_format == "parquet":
                check_parquet_schema(pq.ParquetFile(handle).schema_arrow, where)
                handle.seek(0)
                frame = pd.read_parquet(handle)
            else:
                check_csv_header(handle, where)
                frame = pd.read_csv(handle)
        except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise BatchReadError(f"{where} cannot be read: {parser_message(exc)}") from exc
    check_shape(frame, where)
    return frame


def _prediction_files(config: PipelineConfig, ds: str) -> list[tuple[str, Path]]:
    """(scoring date, file) of every predictions file scored within the lookback window up to ``ds``."""
    end = dt.date.fromisoformat(ds)
    found = []
    for offset in range(config.performance.lookback_days, -1, -1):
        day = (end - dt.timedelta(days=offset)).isoformat()
        folder = predictions_dir(config, day)
        if folder.is_dir():
            found += [(day, p) for p in sorted(folder.iterdir()) if is_predictions_file(p)]
    return found


def matched_predictions(config: PipelineConfig, labels: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Labels joined with the predictions of the same ids (the latest scoring of an id wins), with
    the scoring date; only the ids present on both sides."""
    ids = labels[config.id_columns]
    parts = []
    for day, path in _prediction_files(config, ds):
        names = pq.read_schema(path).names
        if "model_version" not in names:  # a partition whose every row was rejected
            continue
        probabilities = [proba_column(c) for c in proba_classes(names)]
        columns = [c for c in names if c in config.id_columns or c in ("prediction", "model_version", *probabilities)]
        frame = pq.read_table(path, columns=columns).to_pandas()
        for column in config.id_columns:
            frame[column] = frame[column].map(level_label)
        frame = frame.merge(ids, on=config.id_columns, how="inner")
        if not frame.empty:
            parts.append(frame.assign(scoring_date=day, model_version=frame["model_version"].astype(str)))
    if not parts:
        return pd.DataFrame(columns=[*labels.columns, "prediction", "model_version", "scoring_date"])
    predictions = pd.concat(parts, ignore_index=True).drop_duplicates(subset=config.id_columns, keep="last")
    return labels.merge(predictions, on=config.id_columns, how="inner")


def group_metric(config: PipelineConfig, rows: pd.DataFrame) -> float | None:
    """The primary metric of matched rows (None when it cannot be computed, e.g. one class only).

    Binary: of the positive class (``positive_label``, else the second class); multiclass: the
    macro one-vs-rest metric over the ``proba_<class>`` columns, as at evaluation."""
    y = rows[config.target]
    if config.task == "regression":
        return metric_value(config.metric, y.to_numpy(dtype=float), rows["prediction"].to_numpy(dtype=float))
    classes = proba_classes(rows.columns)  # in the model's order, as text
    positive = positive_class(classes, config.positive_label) if classes and is_binary(classes) else None
    truth = y.map(level_label).to_numpy()
    if config.metric in ("roc_auc", "average_precision", "log_loss"):
        if len(set(truth)) < 2 or not classes:
            return None
        one_column = positive is not None and config.metric != "log_loss"
        inputs = rows[proba_column(positive)].to_numpy(dtype=float) if one_column else \
            rows[[proba_column(c) for c in classes]].to_numpy(dtype=float)
    else:
        inputs = rows["prediction"].map(level_label).to_numpy()
    try:
        return metric_value(config.metric, truth, inputs, positive, classes or None)
    except ValueError:  # one class only, or labels the model never saw
        return None


def judge(config: PipelineConfig, value: float | None, validation: float | None, rows: int) -> tuple[str, list]:
    """The status and reasons of a metric of ``rows`` rows (realised or estimated): see the module's statuses."""
    better = config.greater_is_better
    floor, drop = config.performance_floor, config.performance.max_drop

    def worse(a: float, b: float) -> bool:
        return a < b if better else a > b

    if value is None:
        return "too_few_rows", ["the metric cannot be computed on these rows (one class only)"]
    if rows < config.performance.min_rows:
        return "too_few_rows", [f"{rows} labelled rows, fewer than performance.min_rows "
                                f"{config.performance.min_rows}: recorded, not judged"]
    reasons = []
    if worse(value, floor):
        reasons.append(f"{config.metric} {value:.4f} is worse than the floor {floor:g}")
    if validation is not None and worse(value, validation - drop if better else validation + drop):
        reasons.append(f"{config.metric} {value:.4f} is worse than the validation score {validation:.4f} "
                       f"by more than {drop:g}")
    if not reasons:
        return "ok", []
    return ("below_floor" if worse(value, floor) else "below_validation"), reasons


def estimate_of_rows(config: PipelineConfig, metadata: dict, rows: pd.DataFrame) -> dict:
    """The estimated primary metric (:func:`include.ml.estimation.estimated_performance`) of exactly the
    labelled ``rows``, from their stored probabilities: what the realised value is set beside. Value,
    lower and upper are None when the version has no calibration or the metric is not estimated."""
    from include.ml.estimation import estimated_performance

    classes = metadata.get("classes") or []
    columns = [proba_column(level_label(c)) for c in classes]
    proba = rows[columns].to_numpy(dtype=float) if classes and set(columns) <= set(rows.columns) else None
    found = estimated_performance(config, metadata, proba)
    if found["status"] == "not_estimated":
        return {"value": None, "lower": None, "upper": None}
    return {key: found[key] for key in ("value", "lower", "upper")}


def measure(config: PipelineConfig, ds: str, run_id: str = "manual") -> dict:
    """Measure realised performance from the labels delivered on ``ds``; append one record per
    (model version, scoring date) to the monitoring history. Returns the run's totals, its records
    and the breaches (records whose status is below the floor or the validation score)."""
    files = label_files(config, ds)
    labels = read_labels(config, files)
    matched = matched_predictions(config, labels, ds)
    registry = ModelRegistry(config.registry_path)
    measured_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    records = []
    groups = matched.groupby(["model_version", "scoring_date"], sort=True) if len(matched) else []
    for (version, day), rows in groups:
        value = group_metric(config, rows)
        try:
            metadata = registry.metadata(version)
        except (OSError, KeyError, ValueError):
            metadata = {}
        validation = (metadata.get("metrics") or {}).get(config.metric)
        status, reasons = judge(config, value, validation, len(rows))
        estimated = estimate_of_rows(config, metadata, rows)
        records.append({
            "pipeline": config.name, "labels_date": ds, "run_id": run_id, "model_version": version,
            "scoring_date": day, "metric": config.metric, "value": value, "rows": len(rows),
            "validation_score": validation, "floor": config.performance_floor,
            "max_drop": config.performance.max_drop, "status": status, "reasons": reasons,
            "measured_at": measured_at, "estimated_value": estimated["value"],
            "estimated_lower": estimated["lower"], "estimated_upper": estimated["upper"],
            "estimation_error": None if value is None or estimated["value"] is None else value - estimated["value"],
        })
    if records:
        for record in records:
            storage.append_jsonl(config.registry_layout.performance_history, record)
    return {
        "pipeline": config.name, "labels_date": ds, "label_files": [str(f) for f in files],
        "labelled_rows": len(labels), "matched_rows": len(matched), "unmatched_rows": len(labels) - len(matched),
        "records": records, "breaches": [r for r in records if r["status"] in BREACHES],
    }


def history(config: PipelineConfig) -> list[dict]:
    """Realised-performance records oldest first; re-measuring a delivery replaces its records."""
    return storage.read_jsonl_latest(config.registry_layout.performance_history,
                                     ("labels_date", "model_version", "scoring_date"))

