"""The pipeline's numbers as Airflow metrics (StatsD, Datadog or OpenTelemetry, as configured in
Airflow's ``[metrics]`` section; nothing is sent when metrics are off).

Names carry the pipeline, because plain StatsD has no tags; the same values also go with tags
(``pipeline``, and ``version`` where one applies) for backends that keep them. With StatsD they
arrive under Airflow's prefix, e.g. ``airflow.ml.credit_default.training.score``.

Gauges: ``ml.<pipeline>.training.score`` (primary metric of the candidate on the holdout),
``training.drifted_share`` (share of features that drifted), ``training.rows``, ``scoring.rows``,
``scoring.scored``, ``scoring.rejected``, ``scoring.reject_share``, ``scoring.estimated_value`` (the
primary metric estimated without labels, per version), ``performance.value`` (realised metric),
``performance.estimation_error`` (realised minus estimated, on the same rows). Counters: ``promotions``,
``holds``, ``rejections``, ``rollbacks``, ``performance.breaches``.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

BRANCH_COUNTERS = {"promote": "promotions", "hold": "holds", "reject": "rejections"}


def _stats():
    """Airflow's stats module, set up from ``[metrics]`` if this process has not done it yet
    (task processes started by a worker have; ``dag.test()`` and the CLI have not)."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability.metrics import stats_utils

    if stats._factory is None:  # private, but the only way to tell "never initialised" from "off"
        stats.initialize(factory=stats_utils.get_stats_factory(),
                         export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True))
    return stats


def _name(pipeline: str, stat: str) -> str:
    from airflow.sdk._shared.observability.metrics.stats import normalize_name_for_stats

    return normalize_name_for_stats(f"ml.{pipeline}.{stat}")


def _gauge(pipeline: str, stat: str, value: object, **tags: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    _stats().gauge(_name(pipeline, stat), float(value),
                   tags={"pipeline": pipeline, **{k: str(v) for k, v in tags.items() if v is not None}})


def _count(pipeline: str, stat: str, **tags: object) -> None:
    _stats().incr(_name(pipeline, stat),
                  tags={"pipeline": pipeline, **{k: str(v) for k, v in tags.items() if v is not None}})


def _safely(emit):
    """Metrics must never fail a task: a broken metrics backend is logged and ignored."""

    def wrapper(*args, **kwargs) -> None:
        try:
            emit(*args, **kwargs)
        except Exception:
            log.warning("could not emit metrics with %s", emit.__name__, exc_info=True)

    wrapper.__name__, wrapper.__doc__ = emit.__name__, emit.__doc__
    return wrapper


@_safely
def emit_training_metrics(pipeline: str, summary: dict) -> None:
    """After a training run (``summary`` is the plain form of the run's
    :class:`~include.ml.records.RunSummary`): the candidate's score, drifted-feature share and rows,
    and one count of its branch (a promotion counts only when production really switched, so a rerun
    does not count twice)."""
    from include.ml.records import RunSummary

    run = RunSummary.model_validate(summary)
    _gauge(pipeline, "training.score", run.score, version=run.version, metric=run.metric)
    if run.drift_by_feature:
        _gauge(pipeline, "training.drifted_share", len(run.drifted_features) / len(run.drift_by_feature))
    _gauge(pipeline, "training.rows", run.rows)
    if run.branch in BRANCH_COUNTERS and (run.branch != "promote" or run.switched):
        _count(pipeline, BRANCH_COUNTERS[run.branch], version=run.version)


@_safely
def emit_scoring_metrics(pipeline: str, summary: dict) -> None:
    """After a scoring date (``summary`` from ``include.ml.scoring.summarise``): rows, scored,
    rejected, the reject share and each version's estimated primary metric."""
    rows, rejected = summary.get("rows"), summary.get("rejected")
    _gauge(pipeline, "scoring.rows", rows)
    _gauge(pipeline, "scoring.scored", summary.get("scored"))
    _gauge(pipeline, "scoring.rejected", rejected)
    if rows and isinstance(rejected, int | float):
        _gauge(pipeline, "scoring.reject_share", rejected / rows)
    for version, found in (summary.get("estimated_performance") or {}).items():
        _gauge(pipeline, "scoring.estimated_value", found.get("value"), version=version, metric=found.get("metric"))


@_safely
def emit_performance_metrics(pipeline: str, record: dict) -> None:
    """For one realised-performance record (``include.ml.performance``): the realised metric, and a
    breach count when it fell below the floor or the validation score."""
    version = record.get("model_version")
    _gauge(pipeline, "performance.value", record.get("value"), version=version, metric=record.get("metric"))
    _gauge(pipeline, "performance.estimation_error", record.get("estimation_error"), version=version,
           metric=record.get("metric"))
    if record.get("status") in ("below_floor", "below_validation"):
        _count(pipeline, "performance.breaches", version=version, status=record.get("status"))


@_safely
def emit_rollback(pipeline: str) -> None:
    """One rollback of the production model (model operations DAG)."""
    _count(pipeline, "rollbacks", source="model_ops")


@_safely
def emit_manual_promotion(pipeline: str) -> None:
    """One promotion made by hand (model operations DAG): counted with the training runs' promotions."""
    _count(pipeline, "promotions", source="model_ops")
