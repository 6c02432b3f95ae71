"""What the steps of a training run hand each other: one typed record per step.

Each record is written by its step into the run's workspace (:class:`RunWorkspace`) and read back
from there by the steps after it, the alerts, the monitoring page and the metrics. XCom carries
their plain-dict form (``record.to_dict()``): Airflow deserialises only its own classes.

Cheap to import (pydantic only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from include.ml import storage

Branch = Literal["promote", "hold", "reject"]
BRANCHES: tuple[Branch, ...] = ("promote", "hold", "reject")
DECIDED: dict[str, str] = {"promote": "promoted", "hold": "held", "reject": "rejected"}  # branch -> decision


class StepRecord(BaseModel):
    """A record one step writes to ``FILE`` in the run's workspace. Unknown keys are ignored, so a
    file written by a newer release still reads."""

    model_config = ConfigDict(extra="ignore")
    FILE: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (what XCom carries)."""
        return self.model_dump(mode="json")


class ExtractRecord(StepRecord):
    """The batch a run read: its logical date and fingerprint."""

    FILE: ClassVar[str] = "extract.json"
    ds: str
    path: str
    sha256: str
    bytes: int
    rows: int
    columns: int


class ValidationRecord(StepRecord):
    """What validation found: rows kept, features used and where they came from, warnings."""

    FILE: ClassVar[str] = "validation.json"
    rows: int
    features: int
    feature_origin: Literal["config", "registry", "inferred"]
    passed: bool = True
    reference_version: str | None = None
    warnings: list[dict] = Field(default_factory=list)
    unlabelled_rows: int = 0  # rows without a target, left out of training
    inference_notes: list[str] = Field(default_factory=list)  # features: infer: columns left out, and why

    def brief(self) -> dict[str, Any]:
        """The small part for XCom and logs: counts and the first five warnings' messages."""
        return {"rows": self.rows, "features": self.features, "feature_origin": self.feature_origin,
                "passed": self.passed, "unlabelled_rows": self.unlabelled_rows, "warnings": len(self.warnings),
                "warning_messages": [w.get("message") for w in self.warnings[:5]]}


class FeaturesRecord(StepRecord):
    """The features the run's model uses (FeatureSpec dicts) and their origin."""

    FILE: ClassVar[str] = "features.json"
    origin: Literal["config", "registry", "inferred"]
    features: list[dict]

    def specs(self) -> list:
        from include.ml.config import FeatureSpec

        return [FeatureSpec.model_validate(f) for f in self.features]


class WindowBatch(BaseModel):
    """One batch of a training window: its logical date, the delivery's sha256 and its validated rows."""

    model_config = ConfigDict(extra="ignore")
    ds: str
    sha256: str
    rows: int


class TrainingRecord(StepRecord):
    """How the candidate was fitted: on which batches (``window``, oldest first, the run's own last;
    ``window_sha256`` their combined fingerprint), how many rows, which holdout."""

    FILE: ClassVar[str] = "training.json"
    estimator: str
    train_rows: int
    holdout_rows: int
    fit_seconds: float
    seed: int
    baseline: dict | None = None  # the trivial model fitted on the training rows (evaluate.fit_baseline)
    window_batches: int = 1  # configured (model.window_batches)
    window_found: int = 1  # batches found: the run's own and the archived earlier ones
    window: list[WindowBatch] = Field(default_factory=list)
    window_sha256: str | None = None  # the run's own sha256 for a window of one batch
    window_skipped: list[str] = Field(default_factory=list)  # archived batches left out, and why
    holdout_key: list[str] = Field(default_factory=list)  # the columns whose hash chooses the holdout


class GateResult(BaseModel):
    """The quality gates' verdict: passed, the reasons it did not, the point difference and the
    paired-bootstrap interval of (candidate - production) when there was a production model."""

    model_config = ConfigDict(extra="ignore")
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    delta: float | None = None
    interval: dict | None = None


class EvaluationRecord(StepRecord):
    """Candidate and production (champion) on the same holdout rows, and the gates' verdict.
    ``score`` is always the value of the primary ``metric``."""

    FILE: ClassVar[str] = "evaluation.json"
    metric: str
    greater_is_better: bool
    candidate: dict[str, float]
    score: float
    champion_version: str | None = None
    champion: dict[str, float] | None = None
    champion_score: float | None = None
    champion_note: str | None = None
    gates: GateResult
    holdout_rows: int
    # the trivial model on the same holdout: strategy ("prior" or "mean"), score, fitted_on (training or holdout rows)
    baseline: dict | None = None
    leakage: list[str] = Field(default_factory=list)  # reasons to hold for possible target leakage


class DecisionRecord(StepRecord):
    """The drift check's branch and why; ``drift`` is the drift report's summary."""

    FILE: ClassVar[str] = "decision.json"
    branch: Branch
    reasons: list[str]
    drift_verdict: str
    drifted_features: list[str] = Field(default_factory=list)
    drift: dict = Field(default_factory=dict)
    production_before: str | None = None
    score: float | None = None
    champion_score: float | None = None
    metric: str
    # for a drift hold whose gates passed: the pipeline's decision.drift_policy, and what it made of it
    drift_policy: str | None = None
    ask: bool = False  # a person is asked in Airflow's Required Actions (drift_policy approve)
    promoted_by_policy: bool = False  # promoted despite drift (drift_policy promote_if_better)
    policy_reason: str | None = None  # what the policy made of the hold, in words


class OutcomeRecord(StepRecord):
    """What a branch did: the version registered, whether production switched, before and after."""

    FILE: ClassVar[str] = "outcome.json"
    pipeline: str
    run_id: str
    logical_date: str
    branch: Branch
    version: str
    reused_from_earlier_run: bool = False
    switched: bool = False
    production_before: str | None = None
    production_after: str | None = None
    metric: str
    score: float | None = None
    champion_score: float | None = None
    reasons: list[str] = Field(default_factory=list)
    drift_verdict: str | None = None
    drifted_features: list[str] = Field(default_factory=list)
    drift_policy: str | None = None  # as in DecisionRecord
    decision_requested: bool = False  # held, and a person is asked in Airflow (drift_policy approve)
    promoted_by_policy: bool = False


class DecisionAnswer(StepRecord):
    """A person's answer (or its absence) to the decision request of a held run, written into the held
    run's workspace: what was chosen, by whom, why, and what it did to production."""

    FILE: ClassVar[str] = "answer.json"
    pipeline: str
    run_id: str  # the training run whose candidate was held
    version: str
    choice: Literal["promote", "keep"]
    timed_out: bool = False
    user: str | None = None  # who answered (None: nobody, before the timeout)
    actor: str  # as in the audit log: "<user> via <decision run>"
    reason: str
    switched: bool = False
    refused: str | None = None  # why a promote answer did not switch (production moved, already production)
    production_before: str | None = None
    production_after: str | None = None
    decision_run_id: str | None = None
    answered_at: str | None = None


class FeatureDrift(BaseModel):
    """One feature's gating statistic in a run summary."""

    model_config = ConfigDict(extra="ignore")
    statistic: str
    value: float | None = None
    level: str


class RunSummary(OutcomeRecord):
    """A finished run: its outcome plus the batch's size, warnings and every feature's drift. One
    line of the pipeline's run history."""

    FILE: ClassVar[str] = "summary.json"
    rows: int | None = None
    unlabelled_rows: int = 0  # rows of the batch without a target, left out of training
    validation_warnings: int = 0
    data_sha256: str | None = None
    drift_by_feature: dict[str, FeatureDrift] = Field(default_factory=dict)
    finished_at: str | None = None
    workspace: str | None = None


FAILED = "failed"  # the state (and branch) of a history line of a run that failed


class FailedRun(StepRecord):
    """A run that failed at one of its steps: one line of the pipeline's run history, until a
    successful rerun of the same run id replaces it. ``error`` is the error's first line."""

    FILE: ClassVar[str] = "failure.json"
    pipeline: str
    run_id: str
    logical_date: str | None = None
    state: Literal["failed"] = FAILED
    branch: Literal["failed"] = FAILED
    step: str
    error: str
    error_type: str | None = None
    quarantined_to: str | None = None
    reasons: list[str] = Field(default_factory=list)
    finished_at: str | None = None
    workspace: str | None = None


Record = TypeVar("Record", bound=StepRecord)


class RunWorkspace:
    """The run-scoped folder of one training run: the data, the candidate model and the records
    its steps write. Every file name of the workspace is here."""

    BATCH = "batch.parquet"  # the delivery as read, text kept as text
    VALIDATED = "validated.parquet"  # the rows and columns the model trains on
    HOLDOUT = "holdout.parquet"
    CANDIDATE = "candidate.joblib"
    CANDIDATE_SIGNATURE = "candidate.signature.json"  # its HMAC: checked before it is unpickled
    REFERENCE_PROFILE = "reference_profile.json"
    PREDICTION_PROFILE = "prediction_profile.json"
    DRIFT = "drift.json"  # the full drift report (every feature's numbers)
    CALIBRATION = "calibration.json"  # the candidate's probabilities calibrated on the holdout (estimation.py)
    IMPORTANCE = "importance.json"  # the candidate's permutation importance on the holdout (importance.py)

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"RunWorkspace({str(self.folder)!r})"

    def path(self, name: str) -> Path:
        """A file of the workspace (one of the names above or a record's ``FILE``)."""
        return self.folder / name

    @property
    def run_name(self) -> str:
        return self.folder.name

    def has(self, record: type[StepRecord]) -> bool:
        return self.path(record.FILE).exists()

    def write(self, record: Record) -> Record:
        """Write a step's record (atomically) and return it."""
        storage.write_json(self.path(record.FILE), record.to_dict())
        return record

    def read(self, record: type[Record]) -> Record:
        """A step's record; ``FileNotFoundError`` when that step has not run in this workspace."""
        return record.model_validate(storage.read_json(self.path(record.FILE)))

    def read_or_none(self, record: type[Record]) -> Record | None:
        """A step's record, or None when it is missing or unreadable."""
        data = storage.read_json_or_none(self.path(record.FILE))
        return None if data is None else record.model_validate(data)

    def write_json(self, name: str, data: Any) -> None:
        storage.write_json(self.path(name), data)

    def read_json(self, name: str) -> Any:
        return storage.read_json(self.path(name))

    def read_json_or_none(self, name: str) -> Any | None:
        return storage.read_json_or_none(self.path(name))
