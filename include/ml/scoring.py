"""Batch scoring with bounded memory: stream a file in chunks, reject bad rows with a reason, write
predictions to Parquet atomically.

Each chunk is validated row by row against the model's features (numbers that are not numbers,
infinities, values outside a declared range or allowed list); rows that fail go to a rejects file
with their reason, the rest are predicted. Output and rejects are written under temporary names
and renamed into place at the end; when rejects exceed ``max_reject_share`` nothing is published.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.ml import storage
from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import BatchReadError, InputDataError
from include.ml.evaluate import is_binary, positive_class, positive_probability, proba_classes, proba_column
from include.ml.extract import (
    DEFAULT_MAX_BYTES,
    check_csv_header,
    check_parquet_schema,
    check_shape,
    open_listed_delivery,
    parser_message,
)
from include.ml.feature_rules import FeatureRules, level_label

SUMMARY_FILE = "_summary.json"  # a scoring date's totals, beside its predictions
REJECTS_SUFFIX = ".rejects.parquet"  # a predictions file's rejected rows, beside it: part-000.rejects.parquet
ROW_COLUMN = "row"  # in predictions and rejects: the row's 0-based position in the input file (the join key
# when the pipeline has no id columns)


def rejects_file(output: Path) -> Path:
    """Where the rejected rows of predictions file ``output`` go."""
    return output.with_name(f"{output.stem}{REJECTS_SUFFIX}")


def is_predictions_file(path: Path) -> bool:
    """Whether ``path`` in a predictions folder holds predictions (not rejects, not the summary)."""
    return path.suffix == ".parquet" and not path.name.endswith(REJECTS_SUFFIX)


class TooManyRejectsError(InputDataError):
    """More rows failed validation than the pipeline allows; no output was published."""


@dataclass
class ScoringSummary:
    """What a scoring run did: rows in, predicted, rejected (by reason), the prediction distribution."""

    input: str
    output: str
    rejects: str | None
    version: str
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    prediction_mean: float | None = None  # of the positive class's probability; multiclass: the predicted class's
    prediction_histogram: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def iter_chunks(path: Path, chunk_rows: int, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows, streamed from a Parquet (record batches) or CSV file.

    The file is opened once by :func:`include.ml.extract.open_delivered` (a regular file inside its
    folder, at most ``max_bytes``, not compressed) and streamed from that descriptor; duplicate column
    names, nested or binary Parquet columns, overlong names and text cells over
    :data:`~include.ml.extract.MAX_TEXT_CHARS` refuse the file (:class:`BatchReadError`)."""
    path = Path(path)
    where = f"scoring input {path}"
    handle, file_format = open_listed_delivery(path, max_bytes, where)
    rows = 0
    with handle:
        try:
            if file_format == "parquet":
                # pre_buffer would keep every row group read so far in memory until the file is closed
                parquet = pq.ParquetFile(handle, pre_buffer=False)
                check_parquet_schema(parquet.schema_arrow, where)
                chunks = (batch.to_pandas() for batch in parquet.iter_batches(batch_size=chunk_rows))
            else:
                check_csv_header(handle, where)
                chunks = pd.read_csv(handle, chunksize=chunk_rows, low_memory=False)
            for chunk in chunks:
                check_shape(chunk, where, first_row=rows, magnitudes=False)
                rows += len(chunk)
                yield chunk
        except (pa.ArrowInvalid, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            raise BatchReadError(f"{where} cannot be read: {parser_message(exc)}") from exc


def score_file(model, version: str, config: PipelineConfig, features: list[FeatureSpec], source: Path,
               output: Path, chunk_rows: int = 100_000, max_reject_share: float = 0.01) -> ScoringSummary:
    """Score ``source`` chunk by chunk with ``model``; write predictions to ``output`` (Parquet) and
    rejected rows, with their reason, to :func:`rejects_file` (``<output stem>.rejects.parquet``).

    Predictions and rejects carry ``row`` (:data:`ROW_COLUMN`, the 0-based position in ``source``)
    and the id columns; predictions then ``prediction``, ``proba_<class>`` for classifiers,
    ``model_version`` and ``scored_at``. Raises :class:`TooManyRejectsError` (nothing published)
    when more than ``max_reject_share`` of the rows are rejected.
    """
    output = Path(output)
    rejects = rejects_file(output)
    names = [f.name for f in features]
    rules = FeatureRules(features)
    summary = ScoringSummary(input=str(source), output=str(output), rejects=None, version=version)
    writers: dict[str, pq.ParquetWriter] = {}
    histogram = np.zeros(10, dtype=np.int64)
    total = 0.0
    scored_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        # each file is renamed into place when the block ends cleanly, removed when it raises
        with contextlib.ExitStack() as publish:
            tmp_output, tmp_rejects = publish.enter_context(storage.atomic_path(output)), None
            for chunk in iter_chunks(source, chunk_rows, config.source.max_bytes):
                missing = sorted(set(names + config.id_columns) - set(chunk.columns))
                if missing:
                    raise InputDataError(f"scoring input {source} lacks column(s) {missing} the model {version} needs")
                positions = np.arange(summary.rows, summary.rows + len(chunk), dtype=np.int64)
                summary.chunks += 1
                summary.rows += len(chunk)
                clean, problem = rules.row_problems(chunk)
                bad = problem != ""
                if bad.any():
                    rejected = chunk[bad].astype(str).assign(reject_reason=problem[bad].to_numpy())
                    rejected.insert(0, ROW_COLUMN, positions[np.asarray(bad)])
                    if tmp_rejects is None:
                        tmp_rejects = publish.enter_context(storage.atomic_path(rejects))
                    _write(writers, "rejects", tmp_rejects, rejected)
                    for reason, count in problem[bad].value_counts().items():
                        summary.reject_reasons[reason] = summary.reject_reasons.get(reason, 0) + int(count)
                    summary.rejected += int(bad.sum())
                good = clean[~bad] if bad.any() else clean
                if good.empty:
                    continue
                x = good[names]
                rows = positions[~np.asarray(bad)] if bad.any() else positions
                columns = {ROW_COLUMN: pa.array(rows), **{c: pa.array(good[c].to_numpy()) for c in config.id_columns}}
                if config.task == "classification":
                    # one pass through the model: predict() is the arg-max of these probabilities
                    proba = model.predict_proba(x)
                    columns["prediction"] = pa.array(model.classes_[np.argmax(proba, axis=1)])
                    for index, label in enumerate(model.classes_):  # in classes_ order: see proba_classes
                        columns[proba_column(label)] = pa.array(proba[:, index])
                    # the summary's score: the positive class's probability, or the predicted class's
                    score = positive_probability(model, proba, config.positive_label) \
                        if is_binary(model.classes_) else proba.max(axis=1)
                else:
                    score = np.asarray(model.predict(x), dtype=float)
                    columns["prediction"] = pa.array(score)
                constant = pa.array(np.zeros(len(good), dtype=np.int32))
                columns["model_version"] = pa.DictionaryArray.from_arrays(constant, pa.array([version]))
                columns["scored_at"] = pa.DictionaryArray.from_arrays(constant, pa.array([scored_at]))
                _write_table(writers, "predictions", tmp_output, pa.table(columns))
                summary.scored += len(good)
                total += float(np.sum(score))
                if config.task == "classification":
                    histogram += np.histogram(score, bins=10, range=(0.0, 1.0))[0]
            share = summary.rejected / summary.rows if summary.rows else 0.0
            if share > max_reject_share:
                raise TooManyRejectsError(
                    f"{summary.rejected} of {summary.rows} rows of {source} ({share:.1%}) failed validation, more "
                    f"than the allowed {max_reject_share:.1%}; nothing was published. Reasons: {summary.reject_reasons}"
                )
            for writer in writers.values():
                writer.close()
            writers.clear()
            if not tmp_output.exists():  # every row rejected (within the allowed share) or an empty input
                pq.write_table(pa.table({"prediction": pa.array([], pa.float64())}), tmp_output)
        summary.rejects = None if tmp_rejects is None else str(rejects)
        summary.prediction_mean = total / summary.scored if summary.scored else None
        summary.prediction_histogram = {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": int(c) for i, c in enumerate(histogram)}
        return summary
    finally:
        for writer in writers.values():
            writer.close()


def _write(writers: dict[str, pq.ParquetWriter], key: str, path: Path, frame: pd.DataFrame) -> None:
    _write_table(writers, key, path, pa.Table.from_pandas(frame, preserve_index=False))


def _write_table(writers: dict[str, pq.ParquetWriter], key: str, path: Path, table: pa.Table) -> None:
    if key not in writers:
        writers[key] = pq.ParquetWriter(path, table.schema)
    writers[key].write_table(table.cast(writers[key].schema))


# -- the steps of the batch-scoring DAG ------------------------------------------------------


def output_name(source: Path) -> str:
    """The predictions file a scoring input writes: ``<input stem>.parquet``."""
    return f"{Path(source).stem}.parquet"


def check_output_names(sources: list[Path]) -> None:
    """Refuse, before anything is written, inputs of one date whose outputs would overwrite each other
    (``part.csv`` and ``part.parquet``), a rejects file (an input named ``x.rejects.csv``) or the summary;
    :class:`InputDataError` naming both files."""
    written: dict[str, Path] = {SUMMARY_FILE: Path(SUMMARY_FILE)}
    for source in sorted((Path(p) for p in sources), key=lambda p: p.name):
        output = Path(output_name(source))
        if not is_predictions_file(output):
            raise InputDataError(f"scoring input {source.name!r} in {source.parent} would write {output.name!r}, "
                                 f"which is read as a rejects file ({REJECTS_SUFFIX}): rename it; nothing was scored")
        for name in (output.name, rejects_file(output).name):
            if name in written:
                raise InputDataError(f"scoring inputs {written[name].name!r} and {source.name!r} in {source.parent} "
                                     f"would both write {name!r}: rename one of them; nothing was scored")
            written[name] = source


def partitions(config: PipelineConfig, ds: str) -> list[str]:
    """The partition files (CSV or Parquet) delivered for logical date ``ds``, sorted.

    Every entry named like data is listed, whatever it is: a link, folder, pipe or device named
    ``part.csv`` is then refused by name when it is scored (:func:`iter_chunks`), instead of
    silently left out (or, for a link, followed)."""
    from include.ml.paths import scoring_inbox

    folder = scoring_inbox(config, ds)
    if not folder.is_dir():
        return []
    found = sorted(str(p) for p in folder.iterdir() if p.suffix in {".csv", ".parquet", ".pq"}
                   and not p.name.startswith("."))
    check_output_names(found)  # two inputs writing one output are refused before anything is scored
    return found


def prepare_partitions(config: PipelineConfig, ds: str, source_url: str | None = None) -> list[str]:
    """:func:`partitions` of ``ds``; with ``scoring.query``, its rows for ``ds`` are read first (through
    ``source_url``, default the environment variable ``scoring.query.url_env``) into the date's input
    folder as one partition, ``query-<name>.parquet``, then scored like a delivered file."""
    query = config.scoring.query
    if query is not None:
        from include.ml.paths import scoring_inbox
        from include.ml.sql_source import database_url, read_query

        read_query(database_url(query, source_url), query, ds, scoring_inbox(config, ds) / query.file_name)
    return partitions(config, ds)


def score_partition(config: PipelineConfig, source: str, ds: str) -> dict:
    """Score one partition with the production model (sha256 checked); return its summary."""
    import logging

    from include.ml.paths import predictions_dir
    from include.ml.registry import ModelRegistry
    from include.ml.user_code import code_changes

    siblings = [p for p in partitions(config, ds) if Path(p) != Path(source)]  # they must not share its output
    check_output_names([*siblings, source])
    registry = ModelRegistry(config.registry_path)
    version = registry.production()
    if version is None:
        raise InputDataError(f"pipeline {config.name!r} has no production model to score with")
    metadata = registry.metadata(version)
    features = [FeatureSpec.model_validate(f) for f in metadata["features"]]
    for change in code_changes(metadata):  # a warning, not a failure: today's reviewed code still scores
        logging.getLogger(__name__).warning("pipeline %s, production %s: %s", config.name, version, change)
    output = predictions_dir(config, ds) / output_name(Path(source))
    summary = score_file(registry.load(version), version, config, features, Path(source), output,
                         chunk_rows=config.scoring.chunk_rows, max_reject_share=config.scoring.max_reject_share)
    return summary.to_dict()


def _prediction_scores(config: PipelineConfig, files: list[Path], version: str,
                       positive_label=None) -> np.ndarray | pd.DataFrame:
    """What prediction drift watches (:func:`~include.ml.evaluate.prediction_values`) of the rows
    ``version`` scored: the probability of the positive class by the version's ``positive_label``, every
    class's probability (multiclass, a DataFrame of the ``proba_<class>`` columns), or the prediction."""
    values = []
    multiclass = False
    for path in files:
        schema = pq.read_schema(path)
        classes = proba_classes(schema.names)
        if config.task == "classification" and classes:
            multiclass = not is_binary(classes)
            columns = [proba_column(c) for c in classes] if multiclass else \
                [proba_column(positive_class(classes, positive_label))]
        else:
            columns = ["prediction"]
        if not set(columns) <= set(schema.names) or "model_version" not in schema.names:
            continue
        frame = pq.read_table(path, columns=[*columns, "model_version"]).to_pandas()
        scored_by = frame.pop("model_version").astype(str).to_numpy()
        values.append(frame[scored_by == version].astype(float))
    if not values:
        return np.array([], dtype=float)
    watched = pd.concat(values, ignore_index=True)
    return watched if multiclass else watched.iloc[:, 0].to_numpy()


def summarise(config: PipelineConfig, ds: str, summaries: list[dict], run_id: str = "manual") -> dict:
    """Totals over the partitions of a date and prediction drift of each model version against the
    scores it gave its holdout rows at training, and each version's estimated performance
    (``estimated_performance``, by version: :func:`include.ml.estimation.estimated_performance`). Written to
    ``_summary.json`` beside the predictions and appended to the pipeline's scoring history
    (``scoring.jsonl`` in the registry)."""

    from include.ml.drift import prediction_drift
    from include.ml.paths import predictions_dir
    from include.ml.registry import ModelRegistry

    total = {
        "pipeline": config.name, "logical_date": ds, "run_id": run_id, "partitions": len(summaries),
        "versions": sorted({s["version"] for s in summaries}),
        "rows": sum(s["rows"] for s in summaries), "scored": sum(s["scored"] for s in summaries),
        "rejected": sum(s["rejected"] for s in summaries),
        "reject_reasons": {},
        "prediction_mean": None,
        "prediction_drift": None,
    }
    for s in summaries:
        for reason, count in s["reject_reasons"].items():
            total["reject_reasons"][reason] = total["reject_reasons"].get(reason, 0) + count
    weighted = [(s["prediction_mean"], s["scored"]) for s in summaries if s["prediction_mean"] is not None]
    if weighted:
        total["prediction_mean"] = sum(m * n for m, n in weighted) / sum(n for _, n in weighted)
    registry = ModelRegistry(config.registry_path)
    outputs = [Path(s["output"]) for s in summaries]
    by_version = {}
    for version in total["versions"]:
        profile = registry.metadata(version).get("prediction_profile")
        if profile is None:
            by_version[version] = {"verdict": "no_reference", "reasons": [
                f"{version} was registered without the scores of its holdout rows"]}
            continue
        scores = _prediction_scores(config, outputs, version, registry.metadata(version).get("positive_label"))
        result = prediction_drift(profile, scores, config.drift)
        by_version[version] = {**result, "reference_version": version}
    if by_version:
        order = {"drift": 3, "insufficient_data": 2, "no_reference": 1, "none": 0}
        worst = max(by_version, key=lambda v: order.get(by_version[v]["verdict"], 0))
        total["prediction_drift"] = {**by_version[worst], "by_version": by_version}
    total["estimated_performance"] = _estimates(config, registry, outputs, total["versions"])
    total["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    storage.write_json(predictions_dir(config, ds) / SUMMARY_FILE, total)
    storage.append_jsonl(config.registry_layout.scoring_history, total)
    return total


def version_probabilities(files: list[Path], version: str, classes: list) -> np.ndarray:
    """The ``proba_<class>`` columns (in ``classes`` order) of the rows of ``files`` that ``version`` scored."""
    columns = [proba_column(level_label(c)) for c in classes]
    found = []
    for path in files:
        names = pq.read_schema(path).names
        if not set(columns) <= set(names) or "model_version" not in names:
            continue
        frame = pq.read_table(path, columns=[*columns, "model_version"]).to_pandas()
        found.append(frame.loc[frame.pop("model_version").astype(str).to_numpy() == version, columns]
                     .to_numpy(dtype=float))
    return np.concatenate(found) if found else np.empty((0, len(columns)))


def _estimates(config: PipelineConfig, registry, files: list[Path], versions: list[str]) -> dict:
    """Each version's estimated performance on the rows it scored (:mod:`include.ml.estimation`)."""
    from include.ml.estimation import estimated_performance

    found = {}
    for version in versions:
        metadata = registry.metadata(version)
        classes = metadata.get("classes") or []
        proba = version_probabilities(files, version, classes) if classes else None
        found[version] = {"model_version": version, **estimated_performance(config, metadata, proba)}
    return found


def history(config: PipelineConfig) -> list[dict]:
    """Scoring summaries oldest first (``scoring.jsonl``); a rerun of a run id replaces its line."""
    return storage.read_jsonl_latest(config.registry_layout.scoring_history, ("run_id", "logical_date"))
