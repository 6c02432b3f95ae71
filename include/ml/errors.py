"""Exception types a user of the pipeline can meet, each saying what, where and what to do."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(PipelineError):
    """A pipeline config file is missing, malformed, or has unknown keys or wrong types."""


class ModelCodeError(ConfigError):
    """Model code a config names (``model.estimator`` by import path, ``model.factory``,
    ``model.feature_code``) is missing, outside the bundle, not an estimator, or returns the wrong thing."""


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


class HoldoutSplitError(InputDataError):
    """The rows cannot be split into training rows and a holdout that can be judged (a side empty,
    or with fewer than two classes)."""


class SourceUnavailableError(PipelineError):
    """The source database cannot be reached or dropped the connection: retried, as a database
    restarts or fails over. Never carries the connection URL or its password."""


class SourceQueryError(ConfigError):
    """The source query is wrong (syntax, a missing table or column, a type error): the database's
    message and the query's name; not retried, the query (or the schema it reads) must change."""


class RegistryError(PipelineError):
    """The model registry refused an operation (unknown version, lost race, bad id)."""


class ArtifactIntegrityError(RegistryError):
    """A model artifact's sha256 does not match its metadata: it was changed after registration."""


class UnsafeDeliveryError(BatchReadError):
    """A delivered path is not a plain file inside its folder (a link, a device, a pipe, a folder,
    too large, compressed): it is refused unread and kept where it is."""


EXCERPT_CHARS = 40  # the most of one header or cell of a delivered file a message ever quotes


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as a short escaped excerpt safe to put in a message, log line or email: its
    ``repr`` (control characters escaped), cut to ``limit`` characters with ``…`` when longer.
    The one place a message quotes content of an upstream file (a header or a cell)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def excerpts(values, count: int = 5, limit: int = EXCERPT_CHARS) -> str:
    """The first ``count`` of ``values`` as :func:`excerpt`, comma-separated, with ``…`` when more."""
    values = list(values)
    shown = ", ".join(excerpt(v, limit) for v in values[:count])
    return f"{shown}, … ({len(values)} in all)" if len(values) > count else shown


class DecisionRequestError(InputDataError):
    """A decision request names a training run whose workspace holds no held candidate to decide on
    (missing or not held), or an answer that is not one of the options: not retried."""
