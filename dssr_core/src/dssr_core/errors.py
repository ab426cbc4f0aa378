"""Domain errors. The HTTP layer maps each class to a status code; nothing here knows HTTP.

Every message is a sentence meant for the caller: it says what is wrong and, where it can,
what to do about it. Messages never carry secrets.
"""


class DssrError(Exception):
    """Base of every error DSSR raises on purpose.

    ``detail`` is for the log only, never for the caller: the file or host that failed.
    """

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidRequest(DssrError):
    """The caller sent something malformed or not allowed (HTTP 400)."""


class Unauthorized(DssrError):
    """The caller's credentials do not hold, e.g. a bearer whose signature fails (HTTP 401)."""


class Forbidden(DssrError):
    """The caller may not do this, e.g. a path outside the data root (HTTP 403)."""


class JobNotFound(DssrError):
    """No job with this reference is known to the connector."""


class NotAvailable(DssrError):
    """The thing asked for does not exist, e.g. a job with no output yet (HTTP 404)."""


class JobConflict(DssrError):
    """The request contradicts a live job, e.g. a submit of a live job's name with another
    script (HTTP 409). ``.. versionadded:: 0.2``"""


class SchedulerRejected(DssrError):
    """The scheduler refused the job, e.g. an unknown partition (HTTP 422).

    The message carries the scheduler's own words.
    """


class ClusterUnavailable(DssrError):
    """The cluster or scheduler cannot be reached or did not answer (HTTP 503)."""


class SchedulerTimeout(ClusterUnavailable):
    """The scheduler did not answer within the time allowed (HTTP 503); counted as a timeout
    by :func:`dssr_core.metrics.scheduler_call`.

    .. versionadded:: 0.2.0
    """


class ProviderUnavailable(ClusterUnavailable):
    """The identity provider (its token endpoint or its keys) cannot be reached (HTTP 503)."""


class ConnectorError(DssrError):
    """The connector failed in a way that is not the caller's fault (HTTP 500)."""


class SettingsError(DssrError):
    """A setting has a bad value; the message names the setting."""


class PluginError(DssrError):
    """A plugin cannot be selected: unknown name, duplicate name, or failed to load."""
