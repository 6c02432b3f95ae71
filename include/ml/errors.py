"""Exception types a user of the pipeline can meet, each saying what, where and what to do."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(PipelineError):
    """A pipeline config file is missing, malformed, or has unknown keys or wrong types."""


class InputDataError(PipelineError):
    """A batch cannot be used as given: retrying will not help, the data must change.

    DAG tasks turn these into failures without retries.
    """


class BatchNotFoundError(PipelineError):
    """The batch for a logical date is not in the landing folder (yet): retried, as deliveries run late."""


class BatchReadError(InputDataError):
    """The batch file exists but cannot be parsed (empty, truncated, corrupt)."""


class BatchValidationError(InputDataError):
    """A batch broke the pipeline's schema; ``failures`` lists every broken rule."""

    def __init__(self, message: str, failures: list[dict], quarantined_to: str | None = None):
        super().__init__(message)
        self.failures = failures
        self.quarantined_to = quarantined_to


class RegistryError(PipelineError):
    """The model registry refused an operation (unknown version, lost race, bad id)."""


class ArtifactIntegrityError(RegistryError):
    """A model artifact's sha256 does not match its metadata: it was changed after registration."""
