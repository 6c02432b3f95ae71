"""Deterministic generators of daily batches: the embedded default data, delivered to a landing folder.

Each generator returns one day's DataFrame; the same (seed, date) gives the same rows. From
``drift_from`` on, distributions shift and a new category level appears, the way an upstream
change would show up. ``digits`` generates nothing: it cuts real images (scikit-learn's bundled
``load_digits``) into daily batches. The pipeline never calls these: it reads the files they write.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from include.ml import paths, storage
from include.ml.config import PipelineConfig
from include.ml.errors import ConfigError


def _rng(seed: int, day: dt.date, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), salt])


def _with_missing(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    values = values.astype(object) if values.dtype.kind in "OUS" else values.astype(float)
    mask = rng.random(len(values)) < share
    values[mask] = None if values.dtype == object else np.nan
    return values


def credit_default(day: dt.date, rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """Consumer credit: 15 features, target ``default`` (1 = defaulted within 90 days), about 15% positives.

    Drift: lower incomes, higher card utilisation, more late payments, and a new acquisition
    channel ``"bnpl_partner"``.
    """
    rng = _rng(seed, day)
    n = rows
    age = np.clip(rng.normal(41, 12, n), 18, 90).round()
    income = rng.lognormal(10.6 - (0.25 if drifted else 0.0), 0.45, n).round(-2)
    months_employed = np.clip(rng.gamma(2.0, 30, n), 0, 480).round()
    credit_limit = (income * rng.uniform(0.1, 0.5, n)).round(-2)
    utilization = np.clip(rng.beta(2 + (1.2 if drifted else 0), 5, n), 0, 1).round(3)
    debt_to_income = np.clip(rng.gamma(2.0, 0.12, n) + (0.08 if drifted else 0), 0, 3).round(3)
    late_payments = rng.poisson(0.3 + (0.3 if drifted else 0) + 1.0 * utilization, n)
    open_accounts = rng.poisson(4, n) + 1
    inquiries = rng.poisson(1.0 + (1.0 if drifted else 0), n)
    loan_amount = (rng.lognormal(9.2, 0.6, n)).round(-1)
    home = rng.choice(["rent", "mortgage", "own"], n, p=[0.45, 0.4, 0.15])
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.3, 0.25, 0.25, 0.2])
    employment = rng.choice(
        ["salaried", "self_employed", "contract", "unemployed"], n, p=[0.62, 0.18, 0.14, 0.06]
    )
    channels = ["branch", "online", "broker"] + (["bnpl_partner"] if drifted else [])
    channel_p = [0.3, 0.5, 0.2] if not drifted else [0.15, 0.35, 0.15, 0.35]
    channel = rng.choice(channels, n, p=channel_p)
    education = rng.choice(["secondary", "bachelor", "master", "doctorate"], n, p=[0.4, 0.38, 0.18, 0.04])

    logit = (
        -3.2
        - 2.2 * (np.log(income) - 10.6)
        + 5.0 * (utilization - 0.3)
        + 0.8 * late_payments
        + 3.0 * (debt_to_income - 0.24)
        + 0.3 * inquiries
        - 0.02 * (age - 41)
        - 0.004 * months_employed
        + np.where(employment == "unemployed", 1.4, 0.0)
        + np.where(home == "own", -0.6, 0.0)
        + np.where(channel == "bnpl_partner", 0.5, 0.0)
        + rng.normal(0, 0.3, n)
    )
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    missing = _rng(seed, day, salt=1)
    return pd.DataFrame(
        {
            "customer_id": [f"C{day:%Y%m%d}{i:06d}" for i in range(n)],
            "age": age,
            "income": _with_missing(missing, income, 0.06),
            "months_employed": _with_missing(missing, months_employed, 0.03),
            "credit_limit": credit_limit,
            "utilization": utilization,
            "debt_to_income": _with_missing(missing, debt_to_income, 0.04),
            "late_payments_12m": late_payments,
            "open_accounts": open_accounts,
            "inquiries_6m": inquiries,
            "loan_amount": loan_amount,
            "home_ownership": home,
            "region": region,
            "employment_type": _with_missing(missing, employment, 0.02),
            "channel": channel,
            "education": _with_missing(missing, education, 0.08),
            "default": default,
        }
    )


def house_prices(day: dt.date, rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """Home sales: 10 features, target ``price`` (regression).

    Drift: prices per square metre rise, more sales far from the centre, and a new
    neighbourhood ``"riverside"``.
    """
    rng = _rng(seed, day)
    n = rows
    hoods = ["centre", "old_town", "suburbs", "harbour"] + (["riverside"] if drifted else [])
    hood_p = [0.2, 0.25, 0.4, 0.15] if not drifted else [0.15, 0.2, 0.3, 0.1, 0.25]
    hood = rng.choice(hoods, n, p=hood_p)
    area = np.clip(rng.lognormal(4.5, 0.35, n), 25, 400).round(1)
    rooms = np.clip((area / 28 + rng.normal(0, 0.8, n)).round(), 1, 10)
    bathrooms = np.clip((rooms / 2.5 + rng.normal(0, 0.5, n)).round(), 1, 5)
    age_years = np.clip(rng.gamma(2.0, 18, n), 0, 150).round()
    distance = np.clip(rng.gamma(2.0, 3.0 + (2.0 if drifted else 0), n), 0.2, 60).round(2)
    school = np.clip(rng.normal(6.5, 1.6, n), 1, 10).round(1)
    condition = rng.choice(["poor", "fair", "good", "excellent"], n, p=[0.08, 0.3, 0.45, 0.17])
    garage = rng.choice(["yes", "no"], n, p=[0.45, 0.55])
    energy = rng.choice(list("ABCDEFG"), n, p=[0.08, 0.14, 0.22, 0.24, 0.16, 0.1, 0.06])
    hood_premium = {"centre": 1.35, "old_town": 1.2, "suburbs": 0.95, "harbour": 1.1, "riverside": 1.15}
    cond_premium = {"poor": 0.8, "fair": 0.93, "good": 1.0, "excellent": 1.12}
    per_m2 = 3200 * (1.15 if drifted else 1.0)
    price = (
        per_m2
        * area
        * np.vectorize(hood_premium.get)(hood)
        * np.vectorize(cond_premium.get)(condition)
        * (1 - 0.0015 * age_years)
        * (1 - 0.008 * distance)
        * (1 + 0.03 * (school - 6.5))
        * np.where(garage == "yes", 1.04, 1.0)
        * rng.lognormal(0, 0.12, n)
    ).round(-2)
    missing = _rng(seed, day, salt=1)
    return pd.DataFrame(
        {
            "sale_id": [f"S{day:%Y%m%d}{i:06d}" for i in range(n)],
            "area_m2": area,
            "rooms": rooms,
            "bathrooms": bathrooms,
            "age_years": _with_missing(missing, age_years, 0.05),
            "distance_km": distance,
            "school_rating": _with_missing(missing, school, 0.07),
            "neighbourhood": hood,
            "condition": condition,
            "garage": garage,
            "energy_label": _with_missing(missing, energy, 0.1),
            "price": price,
        }
    )


DIGITS_HELD_BACK = 0.2  # share of the 1,797 images kept out of training batches: scoring files and late labels
DIGITS_FOLDS = 3  # the training pool is cut into this many folds; a day draws from one, the next day from the next


@functools.cache
def _digits_pools() -> tuple[pd.DataFrame, pd.DataFrame]:
    """scikit-learn's bundled handwritten digits (offline), split once and for every seed into the
    training pool and the held-back pool: 64 pixel columns ``pixel_<row>_<col>`` (0-16), target ``digit``."""
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame.rename(columns={"target": "digit"})
    frame = frame.astype({c: int for c in frame.columns})
    order = np.random.default_rng(0).permutation(len(frame))  # fixed, so no seed moves an image across pools
    held = round(len(frame) * DIGITS_HELD_BACK)
    return frame.iloc[order[held:]].reset_index(drop=True), frame.iloc[order[:held]].reset_index(drop=True)


def _digit_images(pool: pd.DataFrame, day: dt.date, rows: int, seed: int, drifted: bool,
                  folds: int = 1) -> pd.DataFrame:
    # Consecutive days draw from different folds, so the model trained yesterday (today's champion) has
    # never seen today's holdout images and the champion/challenger gate compares like with like.
    fold = np.array_split(np.random.default_rng(seed).permutation(len(pool)), folds)[day.toordinal() % folds]
    rng = _rng(seed, day)
    # distinct images within a day while the fold lasts: the holdout holds no copy of a training row
    picked = pool.iloc[rng.choice(fold, rows, replace=rows > len(fold))].reset_index(drop=True)
    pixels = picked.drop(columns=["digit"])
    if drifted:  # the scanner moved: every image one pixel to the right, the first column blank
        images = pixels.to_numpy().reshape(-1, 8, 8)
        moved = np.zeros_like(images)
        moved[:, :, 1:] = images[:, :, :-1]
        pixels = pd.DataFrame(moved.reshape(-1, 64), columns=pixels.columns)
    return pd.concat(
        [pd.DataFrame({"image_id": [f"D{day:%Y%m%d}{i:06d}" for i in range(rows)]}), pixels, picked[["digit"]]],
        axis=1,
    )


def digits(day: dt.date, rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """Real handwritten digits (scikit-learn's ``load_digits``): 64 pixel features, target ``digit``
    (10 classes, about 10% each), ``rows`` images drawn from one of :data:`DIGITS_FOLDS` folds of the
    training pool in turn (so at most ~480 distinct images a day; more are drawn with replacement).

    Drift: every image shifted one pixel to the right, as a misaligned scanner would.
    """
    return _digit_images(_digits_pools()[0], day, rows, seed, drifted, folds=DIGITS_FOLDS)


def digits_scoring(day: dt.date, rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """Like :func:`digits`, from the held-back images that no training batch contains."""
    return _digit_images(_digits_pools()[1], day, rows, seed, drifted)


DIABETES_HELD_BACK = 0.2  # share of the 442 patients kept out of training batches: scoring files and late labels
DIABETES_COLUMNS = {"s1": "total_cholesterol", "s2": "ldl", "s3": "hdl", "s4": "cholesterol_ratio",
                    "s5": "log_triglycerides", "s6": "glucose", "bp": "blood_pressure", "target": "progression"}


@functools.cache
def _diabetes_pools() -> tuple[pd.DataFrame, pd.DataFrame]:
    """scikit-learn's bundled diabetes study (offline, unscaled), each patient with a stable
    ``patient_id``, split once for every seed into the training pool and the held-back pool."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(scaled=False, as_frame=True).frame.rename(columns=DIABETES_COLUMNS)
    frame.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(frame))])
    order = np.random.default_rng(0).permutation(len(frame))  # fixed, so no seed moves a patient across pools
    held = round(len(frame) * DIABETES_HELD_BACK)
    return frame.iloc[order[held:]].reset_index(drop=True), frame.iloc[order[:held]].reset_index(drop=True)


def _patients(pool: pd.DataFrame, day: dt.date, rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    rng = _rng(seed, day)
    picked = pool.iloc[rng.choice(len(pool), rows, replace=rows > len(pool))].reset_index(drop=True)
    # a clinic's records: a few blood pressures missing, a few typed in as 0 (feature code cleans those)
    missing = _rng(seed, day, salt=1).random(rows)
    picked.loc[missing < 0.03, "blood_pressure"] = np.nan
    picked.loc[(missing >= 0.03) & (missing < 0.05), "blood_pressure"] = 0.0
    if drifted:  # a heavier population: body mass index up by 4 points
        picked["bmi"] = picked["bmi"] + 4.0
    return picked


def diabetes(day: dt.date, rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """Real patients of scikit-learn's diabetes study (``load_diabetes``, unscaled): 10 baseline
    measurements, target ``progression`` (a disease progression score one year later, regression),
    ``rows`` patients drawn from the training pool (repeating across days under the same
    ``patient_id``, so the holdout hash keeps each on one side). 3% of blood pressures are missing and
    2% recorded as 0.

    Drift: body mass index 4 points higher.
    """
    return _patients(_diabetes_pools()[0], day, rows, seed, drifted)


def diabetes_scoring(day: dt.date, rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """Like :func:`diabetes`, from the held-back patients that no training batch contains."""
    return _patients(_diabetes_pools()[1], day, rows, seed, drifted)


GENERATORS: dict[str, Callable[[dt.date, int, int, bool], pd.DataFrame]] = {
    "credit_default": credit_default,
    "house_prices": house_prices,
    "digits": digits,
    "diabetes": diabetes,
}
# where a generator draws from a finite set of real rows, the data to score come from rows kept out of training
SCORING_GENERATORS: dict[str, Callable[[dt.date, int, int, bool], pd.DataFrame]] = {
    "digits": digits_scoring, "diabetes": diabetes_scoring}


def write_batches(
    config: PipelineConfig,
    start: dt.date,
    days: int,
    drift_from: dt.date | None = None,
    rows: int | None = None,
) -> list[Path]:
    """Write ``days`` daily batches from ``start`` into the pipeline's landing folder; return their paths.

    ``drift_from`` (else the config's ``simulation.drift_from``) switches drift on from that date.
    Files are written under a temporary name and renamed, as a careful upstream would.
    """
    sim = config.simulation
    if sim is None:
        raise ValueError(f"pipeline {config.name!r} has no 'simulation' section: nothing generates its data")
    if config.source.kind != "files":
        raise ConfigError(f"pipeline {config.name!r} reads its batches with a query (source.kind "
                         f"{config.source.kind!r}): simulation writes landing files; load the generated rows into "
                         "the query's table instead")
    generate = GENERATORS[sim.generator]
    drift_from = drift_from or sim.drift_from
    written = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        frame = generate(day, rows or sim.rows_per_day, sim.seed, drift_from is not None and day >= drift_from)
        path = config.source.path_for(day.isoformat())
        _write_frame(frame, path, config.source.file_format)
        written.append(path)
    return written


def _write_frame(frame: pd.DataFrame, path: Path, file_format: str | None = None) -> None:
    """Write CSV or Parquet (``file_format``, else by suffix) under a temporary name, then rename it
    into place, as a careful upstream would."""
    if (file_format or paths.format_of(path)) == "parquet":
        storage.write_with(path, lambda tmp: frame.to_parquet(tmp, index=False), durable=False)
    else:
        storage.write_with(path, lambda tmp: frame.to_csv(tmp, index=False), durable=False)


def write_scoring_batches(
    config: PipelineConfig,
    start: dt.date,
    days: int,
    drift_from: dt.date | None = None,
    partitions: int | None = None,
    rows: int | None = None,
    bad_rows: int = 0,
) -> dict[str, list[Path]]:
    """Deliver ``days`` days of data to score, from ``start``, and the labels of those rows later.

    Each day gets ``partitions`` Parquet files in the scoring landing folder (without the target,
    ids unique across days and partitions); the targets of the same rows land in the labels folder
    as ``<scoring date + label_delay_days>-scored-<scoring date>.csv``, the way outcomes arrive
    days after the predictions were made. ``bad_rows`` rows of each day's first partition get a
    value no model can score (they go to rejects). Returns ``{"scoring": [...], "labels": [...]}``.
    """

    sim = config.simulation
    if sim is None:
        raise ValueError(f"pipeline {config.name!r} has no 'simulation' section: nothing generates its data")
    if not config.id_columns:
        raise ValueError(f"pipeline {config.name!r} has no id_columns: labels could not be matched to predictions")
    generate = SCORING_GENERATORS.get(sim.generator, GENERATORS[sim.generator])
    drift_from = drift_from or sim.drift_from
    partitions = partitions or sim.scoring_partitions
    rows = rows or sim.scoring_rows
    id_column = config.id_columns[0]
    sample = generate(start, 10, sim.seed, False)
    numeric = next(c for c in sample.select_dtypes("number").columns if c not in (config.target, *config.id_columns))
    written: dict[str, list[Path]] = {"scoring": [], "labels": []}
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        drifted = drift_from is not None and day >= drift_from
        # another seed than the training batches: other customers, the same world
        frame = generate(day, rows * partitions, sim.seed + 1000, drifted)
        frame[id_column] = [f"{id_column[:1].upper()}S{day:%Y%m%d}-{i:07d}" for i in range(len(frame))]
        folder = paths.scoring_inbox(config, day.isoformat())
        for part in range(partitions):
            piece = frame.iloc[part * rows:(part + 1) * rows].drop(columns=[config.target])
            suffix = "parquet"
            if part == 0 and bad_rows:  # a broken upstream writes text into a number column, as CSV
                piece = piece.astype({numeric: object})
                piece.iloc[:bad_rows, piece.columns.get_loc(numeric)] = "unknown"
                suffix = "csv"
            path = folder / f"part-{part:03d}.{suffix}"
            _write_frame(piece, path)
            written["scoring"].append(path)
        delivered = day + dt.timedelta(days=sim.label_delay_days)
        labels = paths.labels_dir(config) / (
            f"{delivered.isoformat()}-scored-{day.isoformat()}.csv")
        _write_frame(frame[[*config.id_columns, config.target]], labels)
        written["labels"].append(labels)
    return written
