"""The small error hierarchy every boundary translates into.

Whether a failure is worth retrying is decided once, where the driver or HTTP error is
caught; the job's next state and the webhook's status code follow from the class.
"""

from embedq.jobs import FailureCause


class EmbedqError(Exception):
    """Base class: a message fit for one line on stderr."""


class ConfigError(EmbedqError):
    """A setting is missing or malformed."""


class DatabaseUnavailable(EmbedqError):
    """The database cannot be reached, or lacks something embedq needs (pgvector)."""


class NotFound(EmbedqError):
    """A named thing (job, model, content type) does not exist."""


class InvalidInput(EmbedqError):
    """The caller asked for something that cannot be done as asked."""


class ProcessingError(EmbedqError):
    """A job could not be processed this time. `cause` is recorded on the job if it dies of it."""

    retryable: bool = False
    retry_after: float | None = None
    cause: FailureCause = FailureCause.REJECTED

    def __init__(self, message: str, *, cause: FailureCause | None = None):
        super().__init__(message)
        if cause is not None:
            self.cause = cause


class RetryableError(ProcessingError):
    """Transient: try again later (connection lost, 5xx, 429)."""

    retryable = True
    cause = FailureCause.OUTAGE

    def __init__(self, message: str, *, retry_after: float | None = None, cause: FailureCause | None = None):
        super().__init__(message, cause=cause)
        self.retry_after = retry_after


class PermanentError(ProcessingError):
    """Trying again cannot help (bad credentials, bad input, dimension mismatch)."""
