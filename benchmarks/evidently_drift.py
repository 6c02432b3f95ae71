"""Evidently 0.7 DataDriftPreset on two Parquet files; prints one JSON line.

Runs in benchmarks/.venv-evidently (Evidently 0.7 needs pandas < 3), called by drift_bench.py:
    python evidently_drift.py REFERENCE.parquet CURRENT.parquet
"""

import json
import resource
import sys
import time

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

reference = pd.read_parquet(sys.argv[1]).drop(columns=["target"])
current = pd.read_parquet(sys.argv[2]).drop(columns=["target"])
started = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds = time.perf_counter() - started
result = snapshot.dict()
drifted = next(m for m in result["metrics"] if m["metric_name"].startswith("DriftedColumnsCount"))
share = drifted["value"]["share"]
print(json.dumps({
    "seconds": seconds,
    "drifted_share": share,
    "dataset_drift": share >= 0.5,  # DataDriftPreset's default drift_share
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
