"""Benchmark: drift report and validation on 1,000,000 rows x 20 features, against Evidently.

    make bench                      # the full run (installs Evidently in its own venv first)
    .venv/bin/python benchmarks/drift_bench.py --rows 200000 --no-evidently

Generates a reference, a batch without drift and a batch with severe drift (16 numeric, 4
categorical features), then measures in the same run:
- fitting the reference profile (once per model version, for information);
- the drift report of each batch against the stored profile (goal: under 1.5 s);
- validation of a batch, :func:`~include.ml.validate.check_batch` (goal: under 2 s), and beside it,
  in turn on the same frame, a plain pandera validation of the same checks
  (:func:`plain_pandera_schema`, ``lazy=True``; goal: ours no slower, in CPU time). Both sides check:
  every feature present and at most ``max_missing`` of it missing; numeric features read as float64
  (values that are not numbers reported: ours reads them, pandera coerces), finite, within the
  declared min/max and within the training range from the reference profile widened by
  ``range_tolerance``; categorical features among their allowed levels (if declared) and the levels
  training saw; the target present, never null, with two classes or more, each at least
  ``min_class_share`` of the rows; at least ``min_rows`` rows; no row repeating an earlier one.
  Ours also grades each failure (error, warning, or an error above ``max_out_of_range_share``),
  reads blank text as a missing target, relabels levels (3.0 as "3") and writes the summary with
  first rows and values; pandera only collects its failure cases. A third row runs the checks the
  config declares and nothing else (:func:`declared_pandera_schema`): what pandera alone costs;
- Evidently 0.7's DataDriftPreset on the same data, in its own virtual environment
  (benchmarks/.venv-evidently, pandas<3) (goal: ours at least 80x faster, same verdicts).
"seconds" is the best wall-clock time of the repeats (for validation: the median of 5 rounds), "CPU s"
the same of this process's CPU times (on a shared machine other work stretches the first more than
the second). Peak memory of each step is
measured in a separate pass with tracemalloc (Python and numpy
allocations); Evidently's is its process's peak RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.ml.config import DriftConfig, FeatureSpec, PipelineConfig  # noqa: E402
from include.ml.drift import ReferenceProfile, drift_report  # noqa: E402
from include.ml.validate import check_batch  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
EVIDENTLY_PYTHON = Path(__file__).resolve().parent / ".venv-evidently" / "bin" / "python"
NUMERIC, CATEGORICAL = 16, 4


def generate(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    """16 numeric features of varied shapes and 4 categoricals; ``drift`` shifts 11 numerics by
    1 std and gives 3 categoricals a new level at 10% (70% of features: drift for any tool)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    makers = [
        lambda: rng.normal(0, 1, rows),
        lambda: rng.lognormal(3, 0.6, rows),
        lambda: rng.exponential(2.0, rows),
        lambda: rng.poisson(3, rows).astype(float),
        lambda: rng.beta(2, 5, rows),
        lambda: rng.gamma(2.0, 10, rows),
        lambda: rng.uniform(0, 100, rows),
        lambda: rng.standard_t(5, rows),
    ]
    for i in range(NUMERIC):
        values = makers[i % len(makers)]()
        if drift and i % 3 != 2:
            values = values + values.std()
        if i % 4 == 1:
            values[rng.random(rows) < 0.05] = np.nan
        columns[f"num_{i:02d}"] = values
    level_sets = [list("abcd"), [f"r{j}" for j in range(8)], [f"c{j}" for j in range(30)], ["yes", "no"]]
    for i, levels in enumerate(level_sets):
        weights = np.linspace(1, 3, len(levels))
        values = rng.choice(np.array(levels, dtype=object), rows, p=weights / weights.sum())
        if drift and i < 3:
            values[rng.random(rows) < 0.10] = "new_level"
        columns[f"cat_{i}"] = values
    columns["target"] = rng.integers(0, 2, rows)
    return pd.DataFrame(columns)


def features() -> list[FeatureSpec]:
    return [FeatureSpec(name=f"num_{i:02d}", type="numeric", min=-1e9) for i in range(NUMERIC)] + [
        FeatureSpec(name=f"cat_{i}", type="categorical") for i in range(CATEGORICAL)
    ]


def config() -> PipelineConfig:
    return PipelineConfig.model_validate({
        "name": "bench", "task": "classification", "target": "target",
        "source": {"path": "bench/{ds}.parquet"}, "features": [f.model_dump() for f in features()],
        "model": {"estimator": "logistic_regression"}, "metric": "roc_auc",
        "validation": {"min_rows": 1000},  # at least drift.min_batch_rows (200): the settings must agree
        "gates": {"min_score": 0.5}, "alerts": {"email": ["x@example.com"]}, "registry": "bench",
    })


def plain_pandera_schema(specs: list[FeatureSpec], cfg: PipelineConfig, reference: dict) -> pa.DataFrameSchema:
    """The checks :func:`~include.ml.validate.check_batch` runs, written the plain pandera way (the
    baseline for the validation ratio; validate it with ``lazy=True``):

    - numeric features: ``float64`` with ``coerce=True`` (pandera's reading of numbers), nullable;
      finite (a vectorised custom check); the declared min and max (``Check.ge``/``Check.le``); the
      training range from the reference profile widened by ``range_tolerance`` (``Check.ge`` and
      ``Check.le`` on the first and last stored quantile); at most ``max_missing`` missing (a
      column-level custom check, ``ignore_na=False``);
    - categorical features: nullable; the allowed levels if declared (``Check.isin``); the levels
      training saw (``Check.isin`` on the profile's shares); at most ``max_missing`` missing;
    - the target: present, never null, at least two classes and every class at least
      ``min_class_share`` of the rows (column-level custom checks);
    - the batch: at least ``min_rows`` rows (a dataframe-level check) and no row repeating an
      earlier one (pandera's ``unique=`` on every column, ``report_duplicates="exclude_first"``).

    What pandera has no place for is left out: severities (warnings against errors, the share
    above which an out-of-range count becomes an error) and the failure summary with first rows.
    The benchmark's levels are already text, so this side does not relabel them.
    """
    rules = cfg.validation
    columns = {}
    for spec in specs:
        limit = rules.max_missing if spec.max_missing is None else spec.max_missing
        checks = [pa.Check(lambda s, limit=limit: s.isna().mean() <= limit, element_wise=False, ignore_na=False,
                           error=f"has more than {limit:.0%} missing values")]
        if spec.type == "numeric":
            checks.append(pa.Check(lambda s: np.isfinite(s), error="are infinite"))
            checks += [pa.Check.ge(spec.min)] if spec.min is not None else []
            checks += [pa.Check.le(spec.max)] if spec.max is not None else []
            observed = reference.get("numeric", {}).get(spec.name)
            if observed and observed.get("quantiles"):
                low, high = observed["quantiles"][0], observed["quantiles"][-1]
                slack = rules.range_tolerance * (high - low)
                checks += [pa.Check.ge(low - slack), pa.Check.le(high + slack)]
            columns[spec.name] = pa.Column("float64", coerce=True, nullable=True, checks=checks)
        else:
            checks += [pa.Check.isin(spec.allowed)] if spec.allowed is not None else []
            known = reference.get("categorical", {}).get(spec.name)
            if known and known.get("shares"):
                checks.append(pa.Check.isin(list(known["shares"])))
            columns[spec.name] = pa.Column(nullable=True, checks=checks)
    share = rules.min_class_share
    columns[cfg.target] = pa.Column(nullable=False, checks=[
        pa.Check(lambda s: s.nunique() >= 2, element_wise=False, error="has a single class"),
        pa.Check(lambda s: s.value_counts(normalize=True).min() >= share, element_wise=False,
                 error=f"has a class below {share:.2%} of the rows"),
    ])
    min_rows = rules.min_rows
    enough_rows = pa.Check(lambda df: len(df) >= min_rows, error=f"has fewer than {min_rows} rows")
    return pa.DataFrameSchema(columns, checks=[enough_rows], strict=False, unique=[*columns],
                              report_duplicates="exclude_first")


def declared_pandera_schema(specs: list[FeatureSpec], target: str) -> pa.DataFrameSchema:
    """Only the checks the config declares, in pandera: every feature nullable, numeric ones
    ``float64`` with their min and max, categorical ones with their allowed levels; the target
    present and never null (the floor: what pandera itself costs on this frame)."""
    columns = {}
    for spec in specs:
        if spec.type == "numeric":
            checks = ([pa.Check.ge(spec.min)] if spec.min is not None else []) + (
                [pa.Check.le(spec.max)] if spec.max is not None else [])
            columns[spec.name] = pa.Column("float64", nullable=True, checks=checks)
        else:
            checks = [pa.Check.isin(spec.allowed)] if spec.allowed is not None else []
            columns[spec.name] = pa.Column(nullable=True, checks=checks)
    columns[target] = pa.Column(nullable=False)
    return pa.DataFrameSchema(columns, strict=False)


def timed(function, repeat: int = 3) -> tuple[float, float, object]:
    """Best of ``repeat`` wall-clock times, best of the CPU times (this process's, which other work on
    a shared machine moves less), and the last result."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        gc.collect()
        started, started_cpu = time.perf_counter(), time.process_time()
        result = function()
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - started_cpu)
    return best, best_cpu, result


def alternated(functions: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, float, object]]:
    """Each function's median wall-clock and CPU time over ``repeat`` rounds that run them in turn
    (a burst of other work on a shared machine then falls on every side alike), and its last result."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in functions}
    results: dict[str, object] = {}
    for _ in range(repeat):
        for name, function in functions.items():
            gc.collect()
            started, started_cpu = time.perf_counter(), time.process_time()
            results[name] = function()
            times[name].append((time.perf_counter() - started, time.process_time() - started_cpu))
    return {name: (statistics.median(t for t, _ in runs), statistics.median(c for _, c in runs), results[name])
            for name, runs in times.items()}


def pandera_verdict(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> str:
    """Validate ``frame`` lazily: "passed", or how many failure cases pandera collected (it has no
    warnings: the few values beyond the training range count here)."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return f"{len(errors.failure_cases)} failure case(s)"
    return "passed"


def peak_mb(function) -> float:
    gc.collect()
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def evidently(reference: Path, current: Path) -> dict | None:
    if not EVIDENTLY_PYTHON.exists():
        return None
    out = subprocess.run([str(EVIDENTLY_PYTHON), str(Path(__file__).with_name("evidently_drift.py")),
                          str(reference), str(current)], capture_output=True, text=True, check=False)
    if out.returncode:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-evidently", action="store_true", help="skip the Evidently comparison")
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    frames = {"reference": generate(args.rows, 1, False), "no drift": generate(args.rows, 2, False),
              "severe drift": generate(args.rows, 3, True)}
    paths = {}
    for name, frame in frames.items():
        paths[name] = DATA / f"{name.replace(' ', '_')}_{args.rows}_v2.parquet"
        if not paths[name].exists():
            frame.to_parquet(paths[name], index=False)

    specs, settings, cfg = features(), DriftConfig(), config()
    rows: list[list[str]] = []
    shape = f"{args.rows:,} x {NUMERIC + CATEGORICAL}"

    fit_s, fit_cpu, profile = timed(lambda: ReferenceProfile().fit(frames["reference"], specs), repeat=1)
    rows.append(["profile fit (reference, once per version)", shape, f"{fit_s:.2f}", f"{fit_cpu:.2f}",
                 f"{peak_mb(lambda: ReferenceProfile().fit(frames['reference'], specs)):.0f}", "", ""])
    stored = ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict())))  # as loaded from the registry

    ours: dict[str, tuple[float, str]] = {}
    for name in ("no drift", "severe drift"):
        seconds, cpu, report = timed(lambda name=name: drift_report(stored, frames[name], settings))
        ours[name] = (seconds, report.verdict)
        memory = peak_mb(lambda name=name: drift_report(stored, frames[name], settings))
        rows.append([f"drift report, {name}", shape, f"{seconds:.2f}", f"{cpu:.2f}", f"{memory:.0f}", report.verdict,
                     "PASS" if seconds < 1.5 else "FAIL (goal < 1.5 s)"])

    # the same frame, the same process, in turn (median of 5 rounds each): only the validator differs
    reference_dict, batch = stored.to_dict(), frames["no drift"]
    sides = {"ours": lambda: check_batch(batch, cfg, specs, reference_dict),
             "plain": lambda: pandera_verdict(plain_pandera_schema(specs, cfg, reference_dict), batch),
             "declared": lambda: pandera_verdict(declared_pandera_schema(specs, cfg.target), batch)}
    measured = alternated(sides, repeat=5)
    peaks = {name: peak_mb(function) for name, function in sides.items()}
    (seconds, cpu, result), (plain_s, plain_cpu, plain_verdict) = measured["ours"], measured["plain"]
    declared_s, declared_cpu, declared_verdict = measured["declared"]
    ratio, cpu_ratio = seconds / plain_s, cpu / plain_cpu
    rows.append(["validation (config + training ranges)", shape, f"{seconds:.2f}", f"{cpu:.2f}", f"{peaks['ours']:.0f}",
                 f"passed, {len(result.warnings)} warning(s)", "PASS" if seconds < 2 else "FAIL (goal < 2 s)"])
    rows.append(["plain pandera, the same checks", shape, f"{plain_s:.2f}", f"{plain_cpu:.2f}", f"{peaks['plain']:.0f}",
                 plain_verdict, f"ours / plain = {ratio:.2f}x (CPU {cpu_ratio:.2f}x; goal <= 1)"])
    rows.append(["plain pandera, config checks only", shape, f"{declared_s:.2f}", f"{declared_cpu:.2f}",
                 f"{peaks['declared']:.0f}", declared_verdict, f"ours / config-only = {seconds / declared_s:.1f}x"])
    verdict = "PASS" if cpu_ratio <= 1 else "FAIL (goal: no slower than plain pandera)"
    validation_ratio = (f"validation: ours {seconds:.2f} s / plain pandera {plain_s:.2f} s = {ratio:.2f}x "
                        f"(CPU {cpu:.2f} / {plain_cpu:.2f} s = {cpu_ratio:.2f}x; "
                        f"peak {peaks['ours']:.0f} / {peaks['plain']:.0f} MB) {verdict}")

    ratios = []
    if not args.no_evidently:
        for name in ("no drift", "severe drift"):
            theirs = evidently(paths["reference"], paths[name])
            if theirs is None:
                rows.append([f"Evidently DataDriftPreset, {name}", shape, "n/a", "", "", "not installed or failed", ""])
                continue
            verdict = "drift" if theirs["dataset_drift"] else "none"
            ratio = theirs["seconds"] / ours[name][0]
            same = (verdict == "drift") == (ours[name][1] == "drift")
            ratios.append(f"{name}: Evidently {theirs['seconds']:.1f} s / ours {ours[name][0]:.2f} s = {ratio:.0f}x "
                          f"({'PASS' if ratio >= 80 else 'FAIL (goal >= 80x)'}); verdicts: Evidently {verdict} "
                          f"(drifted share {theirs['drifted_share']:.2f}), ours {ours[name][1]} "
                          f"({'same' if same else 'DIFFERENT'})")
            rows.append([f"Evidently DataDriftPreset, {name}", shape, f"{theirs['seconds']:.1f}", "",
                         f"{theirs['peak_rss_mb']:.0f} (RSS)", verdict, ""])

    header = ["step", "rows x features", "seconds", "CPU s", "peak MB", "verdict", "goal"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(validation_ratio)
    for line in ratios:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
