"""Check: the pipeline on the real datasets that installed packages bundle (offline), beside plain scikit-learn.

    .venv/bin/python benchmarks/datasets_check.py            # prints the markdown table of docs/datasets.md
    .venv/bin/python benchmarks/datasets_check.py --only iris,wine

For each dataset: the rows are shuffled (seeded) and cut into two halves, delivered as the batches of
two days (with a ``row_id``); a pipeline config with ``features: infer`` and the dataset's task runs both
days through every training step (:func:`include.ml.steps.run_steps`) in a temporary ``ML_HOME``. The
table shows day 1's candidate's holdout metric beside the same estimator (same class, same params and
seed, no preprocessing but median imputation) fitted by plain scikit-learn on the same split
(:func:`include.ml.fitting.split` of the validated rows), and what day 2 (a batch from the same
distribution) decided: its drift verdict and branch. A dataset the pipeline refuses is a row saying
where and why.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY1 = dt.date(2026, 1, 1)
SEED = 0
ESTIMATOR = "random_forest"  # scale-free: plain scikit-learn needs no scaling to be a fair baseline
PARAMS = {"n_estimators": 200, "min_samples_leaf": 1, "n_jobs": 1}


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # where the data come from, for the table
    load: Callable[[], pd.DataFrame]  # features + the target column ``target``
    task: str


def _sklearn(loader: str, target: str | None = None, **kwargs) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        bunch = getattr(datasets, loader)(as_frame=True, **kwargs)
        frame = bunch.frame.copy()
        if target is not None:  # linnerud: three targets; keep one
            frame = pd.concat([bunch.data, bunch.target[[target]]], axis=1)
            return frame.rename(columns={target: "target"})
        return frame

    return load


DATASETS = [
    Dataset("iris", "sklearn load_iris", _sklearn("load_iris"), "classification"),
    Dataset("wine", "sklearn load_wine", _sklearn("load_wine"), "classification"),
    Dataset("breast_cancer", "sklearn load_breast_cancer", _sklearn("load_breast_cancer"), "classification"),
    Dataset("digits", "sklearn load_digits", _sklearn("load_digits"), "classification"),
    Dataset("diabetes", "sklearn load_diabetes", _sklearn("load_diabetes"), "regression"),
    Dataset("diabetes_raw", "sklearn load_diabetes(scaled=False)", _sklearn("load_diabetes", scaled=False),
            "regression"),
    Dataset("linnerud", "sklearn load_linnerud (target Weight)", _sklearn("load_linnerud", target="Weight"),
            "regression"),
]


def pipeline_config(dataset: Dataset, frame: pd.DataFrame):
    """A config a new user would write for this dataset: features inferred, the size's own minimums."""
    from include.ml.config import PipelineConfig

    half = len(frame) // 2
    min_rows = max(1, min(100, half // 2))
    task = dataset.task
    metric = "roc_auc" if task == "classification" else "rmse"  # roc_auc: macro one-vs-rest above two classes
    spread = float(frame["target"].std()) if task == "regression" else 1.0
    gates = ({"min_score": 0.5, "max_regression": 0.05} if task == "classification"
             else {"min_score": 10 * spread, "max_regression": 0.1 * spread})
    return PipelineConfig.model_validate({
        "name": dataset.name, "task": task, "target": "target", "id_columns": ["row_id"],
        "source": {"path": f"landing/{dataset.name}/{{ds}}.csv"},
        "features": "infer",
        "validation": {"min_rows": min_rows, "min_class_share": 0.01},
        "model": {"estimator": ESTIMATOR, "params": PARAMS, "test_size": 0.25, "seed": 42},
        "metric": metric, "gates": gates,
        "drift": {"min_batch_rows": min_rows},
        "alerts": {"email": ["ml-oncall@example.com"]},
        "registry": f"registry/{dataset.name}",
    })


def plain_baseline(config, validated: pd.DataFrame, features: list[str]) -> float:
    """The same estimator fitted by plain scikit-learn on the pipeline's split of the validated rows;
    its holdout metric (macro one-vs-rest ROC AUC for more than two classes)."""
    from sklearn import metrics as skm
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    from include.ml import fitting

    split = fitting.split(validated, config)
    model = make_pipeline(SimpleImputer(strategy="median"), fitting.build_estimator(config))
    model.fit(split.train[features], split.train[config.target])
    X, y = split.holdout[features], split.holdout[config.target]
    if config.metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y, model.predict(X))))
    proba = model.predict_proba(X)
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y == model.classes_[1], proba[:, 1]))
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=model.classes_))


def check(dataset: Dataset) -> dict:
    """Run the dataset's two days; return one row of the table."""
    from include.ml import paths, steps
    from include.ml.records import FeaturesRecord, RunWorkspace

    frame = dataset.load()
    frame.insert(0, "row_id", [f"r{i:05d}" for i in range(len(frame))])
    shuffled = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    half = len(shuffled) // 2
    config = pipeline_config(dataset, frame)
    row = {"dataset": dataset.name, "source": dataset.source, "rows": len(frame), "features": frame.shape[1] - 2,
           "task": dataset.task + (f" ({frame['target'].nunique()} classes)" if dataset.task == "classification"
                                   else ""),
           "metric": config.metric}
    days = []
    for offset, part in enumerate((shuffled.iloc[:half], shuffled.iloc[half:])):
        ds = (DAY1 + dt.timedelta(days=offset)).isoformat()
        path = config.source.path_for(ds)
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_csv(path, index=False)
        run_id = f"scheduled__{ds}T00:00:00+00:00"
        try:
            summary = steps.run_steps(config, run_id, ds)["report"]
        except Exception as error:  # the table records any refusal, with its step
            failure = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            days.append({"failed": failure})
            break
        workspace = RunWorkspace(paths.workspace_dir(config.name, run_id))
        validated = pd.read_parquet(workspace.path(workspace.VALIDATED))
        specs = workspace.read(FeaturesRecord).specs()
        kinds = Counter(spec.type for spec in specs)
        days.append({"summary": summary, "plain": plain_baseline(config, validated, [f.name for f in specs]),
                     "features": ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())})
    first = days[0]
    if "failed" in first:
        return {**row, "pipeline": "–", "plain": "–", "day 2 drift": "–", "day 2 branch": "–",
                "result": f"refused on day 1: {first['failed']}"}
    row.update(pipeline=f"{first['summary']['score']:.4f}", plain=f"{first['plain']:.4f}")
    if len(days) < 2 or "failed" in days[1]:
        return {**row, "day 2 drift": "–", "day 2 branch": "–",
                "result": f"day 2 refused: {days[1]['failed'] if len(days) > 1 else '?'}"}
    second = days[1]["summary"]
    gap = round(first["summary"]["score"] - first["plain"], 4) + 0.0  # + 0.0: no "-0.0000"
    better = "higher" if config.greater_is_better else "lower"
    result = (f"day 1 {first['summary']['branch']}; pipeline - plain {gap:+.4f} ({better} is better); "
              f"inferred {first['features']}")
    if first["summary"]["branch"] != "promote":
        result += "; day 1: " + "; ".join(first["summary"]["reasons"])[:160]
    if second["branch"] != "promote":
        result += "; day 2: " + "; ".join(second["reasons"])[:220]
    return {**row, "day 2 drift": second["drift_verdict"], "day 2 branch": second["branch"], "result": result}


COLUMNS = ["dataset", "source", "rows", "features", "task", "metric", "pipeline", "plain", "day 2 drift",
           "day 2 branch", "result"]


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]).replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--only", help="comma-separated dataset names (default: all)")
    args = parser.parse_args()
    chosen = [d for d in DATASETS if not args.only or d.name in args.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="datasets_check_") as home:
        os.environ["ML_HOME"] = home
        if not (os.environ.get("ML_SIGNING_KEY") or os.environ.get("ML_SIGNING_KEY_FILE")):
            # models are signed: a throwaway key for this throwaway registry (never the data root's own)
            os.environ["ML_SIGNING_KEY"] = secrets.token_hex(32)
        for dataset in chosen:
            rows.append(check(dataset))
            print(f"checked {dataset.name}", file=sys.stderr)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
