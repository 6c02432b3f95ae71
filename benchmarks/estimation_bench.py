"""Benchmark: what estimated performance and permutation importance cost, beside scoring.

    make bench                                          # 1,000,000 scored rows, a 100-feature holdout
    .venv/bin/python benchmarks/estimation_bench.py --rows 100000 --wide-train-rows 5000   # quick

Estimate: the default model (scoring_bench's: credit_default.yaml's HistGradientBoosting on 50,000
generated rows of drift_bench's 20 features) scores ``--rows`` rows with ``score_file`` (the baseline:
read, validate, predict, write), then the scoring summary's extra work is timed: reading the
probabilities back (``scoring.version_probabilities``) and ``estimation.estimate`` (calibrate, sort,
expected ROC curve, accuracy, intervals). Both are reported per 1M rows and as a share of scoring.

Importance: a 100-feature holdout (generated numbers, 10 of them informative) of
``importance.MAX_ROWS`` rows, the same estimator fitted on ``--wide-train-rows`` rows;
``permutation_importance`` with its defaults (3 repeats, the time budget), beside the fit itself
and beside scoring the holdout once. All timings are medians of ``--repeat`` runs in this process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import drift_bench, scoring_bench  # noqa: E402
from include.ml import estimation, importance, scoring  # noqa: E402
from include.ml.config import FeatureSpec, PipelineConfig  # noqa: E402
from include.ml.fitting import fit  # noqa: E402

WIDE_FEATURES, INFORMATIVE = 100, 10
CALIBRATION_ROWS = 20_000


def timed(function, repeat: int) -> tuple[float, object]:
    """The median seconds of ``repeat`` calls of ``function`` and its last result."""
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def wide_frame(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of :data:`WIDE_FEATURES` numeric features and a target that the first
    :data:`INFORMATIVE` explain."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, WIDE_FEATURES))
    logit = x[:, :INFORMATIVE] @ np.linspace(1.0, 0.2, INFORMATIVE) - 1.0
    frame = pd.DataFrame(x, columns=[f"f{i:03d}" for i in range(WIDE_FEATURES)])
    frame["target"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def wide_config() -> PipelineConfig:
    base = scoring_bench.config()
    features = [FeatureSpec(name=f"f{i:03d}", type="numeric") for i in range(WIDE_FEATURES)]
    return base.model_copy(update={"features": features, "id_columns": []})


def estimate_rows(rows: int, repeat: int, folder: Path) -> list[list[str]]:
    """Scoring ``rows`` rows against the estimate of those rows: one table row each."""
    cfg, specs = scoring_bench.config(), scoring_bench.features()
    train = drift_bench.generate(50_000, seed=0, drift=False)
    train["target"] = scoring_bench._learnable_target(train)
    model = fit(train, cfg, specs)
    holdout = drift_bench.generate(CALIBRATION_ROWS, seed=1, drift=False)
    holdout["target"] = scoring_bench._learnable_target(holdout)
    names = [f.name for f in specs]
    calibration = estimation.fit_calibration(holdout["target"].to_numpy(), model.predict_proba(holdout[names]),
                                             list(model.classes_))
    source, output = folder / "input.parquet", folder / "predictions.parquet"
    scoring_bench.write_input(source, rows)
    score_seconds, _ = timed(lambda: scoring.score_file(model, "bench", cfg, specs, source, output), repeat)
    read_seconds, proba = timed(lambda: scoring.version_probabilities([output], "bench", list(model.classes_)),
                                repeat)
    estimate_seconds, found = timed(lambda: estimation.estimate(calibration, proba), repeat)
    per_million = 1_000_000 / rows
    extra = read_seconds + estimate_seconds
    auc = found["metrics"]["roc_auc"]
    return [
        [f"score_file, {rows:,} rows (baseline)", f"{score_seconds:.2f}", f"{score_seconds * per_million:.2f}",
         "1.00x"],
        ["read the probabilities back", f"{read_seconds:.2f}", f"{read_seconds * per_million:.2f}",
         f"{read_seconds / score_seconds:.3f}x"],
        [f"estimate ({calibration['method']}; ROC AUC {auc['value']:.3f})", f"{estimate_seconds:.2f}",
         f"{estimate_seconds * per_million:.2f}", f"{estimate_seconds / score_seconds:.3f}x"],
        ["estimate in all (read + estimate)", f"{extra:.2f}", f"{extra * per_million:.2f}",
         f"{extra / score_seconds:.3f}x"],
    ]


def importance_rows(train_rows: int, repeat: int) -> list[list[str]]:
    """Permutation importance on a 100-feature holdout against fitting and scoring it."""
    cfg = wide_config()
    names = [f.name for f in cfg.features]
    train, holdout = wide_frame(train_rows, seed=2), wide_frame(importance.MAX_ROWS, seed=3)
    fit_seconds, model = timed(lambda: fit(train, cfg, cfg.features), 1)
    score_seconds, _ = timed(lambda: model.predict_proba(holdout[names]), repeat)
    seconds, found = timed(lambda: importance.permutation_importance(model, holdout, cfg, names), repeat)
    top = {item["feature"] for item in found["features"][:INFORMATIVE]}
    informative = len(top & set(names[:INFORMATIVE]))
    return [
        [f"fit, {train_rows:,} rows x {WIDE_FEATURES} features", f"{fit_seconds:.2f}", "", ""],
        [f"predict_proba on the {len(holdout):,}-row holdout", f"{score_seconds:.3f}", "", ""],
        [f"permutation importance ({found['repeats']} repeats, {len(found['unmeasured'])} unmeasured; "
         f"{informative}/{INFORMATIVE} informative in the top {INFORMATIVE})", f"{seconds:.2f}",
         f"{seconds / fit_seconds:.2f}x the fit", f"{seconds / score_seconds:.0f}x one scoring"],
    ]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="scored rows the estimate runs on")
    parser.add_argument("--wide-train-rows", type=int, default=20_000, help="training rows of the 100-feature model")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="estimation-bench-") as folder:
        print(f"estimated performance, {args.rows:,} scored rows x 20 features")
        _print_table(["step", "seconds", "seconds per 1M rows", "ratio to scoring"],
                     estimate_rows(args.rows, args.repeat, Path(folder)))
    print()
    print(f"permutation importance, a {importance.MAX_ROWS:,}-row holdout x {WIDE_FEATURES} features "
          f"(budget {importance.BUDGET_SECONDS:g} s)")
    _print_table(["step", "seconds", "ratio", ""], importance_rows(args.wide_train_rows, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
