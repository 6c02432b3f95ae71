"""Benchmark: streaming batch scoring (``score_file``) on 1M and 10M rows x 20 features.

    make bench                      # the full run, after the drift benchmark
    .venv/bin/python benchmarks/scoring_bench.py                   # 1,000,000 and 10,000,000 rows
    .venv/bin/python benchmarks/scoring_bench.py --quick           # 100,000 and 300,000 rows, one repeat
    .venv/bin/python benchmarks/scoring_bench.py --sizes 1000000 --repeat 5

Writes Parquet inputs (a ``row_id`` and drift_bench's 16 numeric + 4 categorical features, generated
in blocks so the generator stays small) and "the default model" (credit_default.yaml's
HistGradientBoosting and its params, fitted on 50,000 generated rows) to ``benchmarks/.data/``,
reused by later runs. Then, for every size, each method runs in its own child process, so its
peak memory is that process's peak RSS (``ru_maxrss``, which includes the ~200 MiB of imported
libraries and the model):
- streaming: ``score_file`` with its default chunk size - read, validate, predict, write;
- in-memory predict: the whole file read first (not timed), then only ``predict_proba`` timed -
  the model's own speed, the reference for the throughput goal;
- naive: ``pd.read_parquet`` of the whole file, ``predict``, ``predict_proba``, ``to_parquet``.
Every child gets the same environment (OMP_NUM_THREADS passes through when set: HistGradientBoosting
predicts on OpenMP threads). Each method runs ``--repeat`` times, interleaved, except the naive one
above 1,000,000 rows, which runs once (at 10M rows it takes minutes and ~14 GiB, and no goal rests on
it); the table shows the median seconds and the largest peak RSS. Predictions are written under the
data folder and deleted after each run.

Goals (PASS/FAIL printed, exit status 1 when one fails): streaming peak RSS under 1 GiB at every
size and flat (largest size's peak / smallest size's <= 1.5); streaming throughput at least 70% of
the in-memory predict_proba throughput at every size.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import drift_bench  # noqa: E402
from include.ml.config import FeatureSpec, PipelineConfig, load_config  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
METHODS = ("streaming", "in-memory predict", "naive")
GENERATOR_BLOCK_ROWS = 500_000
RSS_LIMIT_MIB, RSS_FLATNESS, THROUGHPUT_SHARE = 1024, 1.5, 0.70
NAIVE_ONCE_ABOVE_ROWS = 1_000_000


def features() -> list[FeatureSpec]:
    """drift_bench's 16 numeric and 4 categorical features."""
    return drift_bench.features()


def config() -> PipelineConfig:
    """A classification pipeline with credit_default.yaml's model (estimator and params) and an id column."""
    default = load_config(ROOT / "include" / "pipelines" / "credit_default.yaml")
    return PipelineConfig.model_validate({
        "name": "scoring_bench", "task": "classification", "target": "target", "id_columns": ["row_id"],
        "source": {"path": "bench/{ds}.parquet"}, "features": [f.model_dump() for f in features()],
        "model": default.model.model_dump(), "metric": "roc_auc",
        "validation": {"min_rows": 1000},  # at least drift.min_batch_rows (200): the settings must agree
        "gates": {"min_score": 0.5}, "alerts": {"email": ["x@example.com"]}, "registry": "bench",
    })


def _learnable_target(frame) -> np.ndarray:
    """A target the features explain in part, so the boosted trees grow as on real data (a random
    target would let early stopping end training after a few trees)."""
    rng = np.random.default_rng(0)
    logit = (frame["num_00"].fillna(0) - 0.02 * frame["num_01"].fillna(20) + 0.3 * frame["num_02"]
             - 2.0 * frame["num_04"] + 0.5 * (frame["cat_0"] == "d") - 0.4 * (frame["cat_3"] == "yes"))
    return (logit + rng.logistic(0, 1, len(frame)) > 0).astype(int).to_numpy()


def write_input(path: Path, rows: int) -> None:
    """``rows`` generated rows (``row_id`` + 20 features, no target) written block by block."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    try:
        for start in range(0, rows, GENERATOR_BLOCK_ROWS):
            size, seed = min(GENERATOR_BLOCK_ROWS, rows - start), 1000 + start // GENERATOR_BLOCK_ROWS
            block = drift_bench.generate(size, seed=seed, drift=False).drop(columns="target")
            block.insert(0, "row_id", np.arange(start, start + len(block), dtype=np.int64))
            table = pa.Table.from_pandas(block, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_model(path: Path, rows: int) -> int:
    """Fit the default model on ``rows`` generated rows and save it with joblib; return its tree count."""
    import joblib

    from include.ml.fitting import fit

    train = drift_bench.generate(rows, seed=0, drift=False)
    train["target"] = _learnable_target(train)
    model = fit(train, config(), features())
    joblib.dump(model, path)
    return int(model.named_steps["model"].n_iter_)


# -- one measurement, in a child process ------------------------------------------------------


def measure(method: str, source: Path, model_path: Path, output: Path) -> dict:
    """Run ``method`` once in this process: its seconds and this process's peak RSS (MiB)."""
    import joblib
    import pandas as pd

    from include.ml.scoring import score_file

    model, cfg, specs = joblib.load(model_path), config(), features()
    names = [f.name for f in specs]
    gc.collect()
    if method == "streaming":
        started = time.perf_counter()
        summary = score_file(model, "bench", cfg, specs, source, output)
        seconds = time.perf_counter() - started
        rows = summary.scored
    elif method == "in-memory predict":
        frame = pd.read_parquet(source)
        started = time.perf_counter()
        proba = model.predict_proba(frame[names])
        seconds = time.perf_counter() - started
        rows = len(proba)
    elif method == "naive":
        started = time.perf_counter()
        frame = pd.read_parquet(source)
        x = frame[names]
        prediction, proba = model.predict(x), model.predict_proba(x)
        out = frame[cfg.id_columns].assign(
            prediction=prediction, **{f"proba_{label}": proba[:, i] for i, label in enumerate(model.classes_)})
        out.to_parquet(output, index=False)
        seconds = time.perf_counter() - started
        rows = len(out)
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return {"seconds": seconds, "rows": rows, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(method: str, source: Path, model_path: Path, output: Path) -> dict:
    """:func:`measure` in a fresh interpreter with this process's environment; the output is checked and deleted."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--input", str(source),
               "--model", str(model_path), "--output", str(output)]
    try:
        done = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{method} on {source.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if method != "in-memory predict":
            import pyarrow.parquet as pq

            written = pq.ParquetFile(output).metadata.num_rows
            if written != result["rows"]:
                raise RuntimeError(f"{method} wrote {written} predictions for {result['rows']} rows")
        return result
    finally:
        output.unlink(missing_ok=True)


# -- the run -----------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of row counts of at least 1000")
    return sizes


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[1_000_000, 10_000_000], help="rows per input, comma-separated")
    parser.add_argument("--quick", action="store_true", help="100,000 and 300,000 rows, one repeat (a smoke run)")
    parser.add_argument("--repeat", type=_at_least_one, default=3, help="runs per method and size (median shown)")
    parser.add_argument("--train-rows", type=_at_least_one, default=50_000, help="rows the default model is fitted on")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="inputs, model and (briefly) predictions")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.input, args.model, args.output)))
        return 0
    if args.quick:
        args.sizes, args.repeat = [100_000, 300_000], 1

    data = args.data_dir
    data.mkdir(parents=True, exist_ok=True)
    inputs = {rows: data / f"scoring_{rows}_v1.parquet" for rows in args.sizes}
    for rows, path in inputs.items():
        if not path.exists():
            started = time.perf_counter()
            write_input(path, rows)
            print(f"generated {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    model_path = data / f"scoring_model_{args.train_rows}_v1.joblib"
    if not model_path.exists():
        trees = write_model(model_path, args.train_rows)
        print(f"fitted {model_path} ({trees} trees)", file=sys.stderr)
    predictions = data / f"predictions-{os.getpid()}"
    predictions.mkdir()

    threads = os.environ.get("OMP_NUM_THREADS")
    print(f"# {os.cpu_count()} CPUs, OMP_NUM_THREADS={threads or 'unset (OpenMP uses every CPU)'}; "
          f"{args.repeat} run(s) per method (naive above {NAIVE_ONCE_ABOVE_ROWS:,} rows: 1), median seconds, "
          f"largest peak RSS; model fitted on {args.train_rows:,} rows; load average {os.getloadavg()[0]:.1f}")
    results: dict[tuple[int, str], list[dict]] = {}
    try:
        for rows in args.sizes:
            for run in range(args.repeat):
                for method in METHODS:  # interleaved, so a busy spell on the machine hits every method alike
                    if method == "naive" and rows > NAIVE_ONCE_ABOVE_ROWS and run:
                        continue
                    output = predictions / f"{method.replace(' ', '_')}_{rows}.parquet"
                    results.setdefault((rows, method), []).append(run_child(method, inputs[rows], model_path, output))
    finally:
        shutil.rmtree(predictions, ignore_errors=True)
    print(f"# load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)")

    seconds = {key: statistics.median(r["seconds"] for r in runs) for key, runs in results.items()}
    peak = {key: max(r["peak_rss_mib"] for r in runs) for key, runs in results.items()}
    speed = {key: key[0] / s for key, s in seconds.items()}
    table = []
    for (rows, method), s in seconds.items():
        note = ""
        if method != "streaming":
            note = f"streaming is {speed[rows, 'streaming'] / speed[rows, method]:.2f}x its rows/s"
        runs = " ".join(f"{r['seconds']:.2f}" for r in results[rows, method])
        table.append([f"{rows:,}", method, f"{s:.2f}", f"{speed[rows, method]:,.0f}", f"{peak[rows, method]:,.0f}",
                      runs, note])
    _print_table(["rows", "method", "seconds", "rows/s", "peak RSS MiB", "each run (s)", "vs this"], table)

    smallest, largest = args.sizes[0], args.sizes[-1]
    streaming_peaks = [peak[rows, "streaming"] for rows in args.sizes]
    flatness = peak[largest, "streaming"] / peak[smallest, "streaming"]
    shares = {rows: speed[rows, "streaming"] / speed[rows, "in-memory predict"] for rows in args.sizes}
    goals = [
        (max(streaming_peaks) < RSS_LIMIT_MIB,
         f"streaming peak RSS < {RSS_LIMIT_MIB} MiB at every size: "
         + ", ".join(f"{rows:,}: {p:,.0f}" for rows, p in zip(args.sizes, streaming_peaks, strict=True))),
        (flatness <= RSS_FLATNESS,
         f"streaming peak RSS flat: {largest:,} / {smallest:,} rows = {flatness:.2f} (goal <= {RSS_FLATNESS})"),
        (min(shares.values()) >= THROUGHPUT_SHARE,
         f"streaming rows/s >= {THROUGHPUT_SHARE:.0%} of in-memory predict_proba at every size: "
         + ", ".join(f"{rows:,}: {share:.0%}" for rows, share in shares.items())),
    ]
    for passed, line in goals:
        print(f"{'PASS' if passed else 'FAIL'}  {line}")
    return 0 if all(passed for passed, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
