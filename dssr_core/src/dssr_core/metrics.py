"""DSSR's Prometheus metrics, and how a connector reports its calls to the scheduler.

Every family lives here, in prometheus-client's default registry (beside its ``process_*``
and ``python_*`` collectors), and is served as ``GET /metrics`` on the API's port (behind the
server key) and on ``DSSR_METRICS_PORT`` (no key; :mod:`dssr_core.metricsport`).

Label values come from small fixed sets: route templates, operation names, outcomes,
causes. A job's name, number or id, a user, an e-mail or a host never becomes a label.

A connector reports each call to its scheduler with :func:`scheduler_call`, and each new
status snapshot with :func:`snapshot_taken`::

    from dssr_core import metrics

    def _list_jobs(self):
        with metrics.scheduler_call("qstat") as call:
            result = self._run("qstat -f")
            if result.exit_status != 0:
                call.failed(unreachable="cannot connect" in result.stderr)
        metrics.snapshot_taken()
        return parse(result.stdout)

The call is timed and counted with its outcome: ``ok``; ``timeout`` (the block raised
:class:`~dssr_core.errors.SchedulerTimeout` or :class:`TimeoutError`); ``error`` (any other
exception, or :meth:`SchedulerCall.failed`). ``dssr_scheduler_up`` follows: 0 after a call
that could not reach the scheduler (:class:`~dssr_core.errors.ClusterUnavailable`, a timeout,
``failed(unreachable=True)``), 1 after any call the scheduler answered.

.. versionadded:: 0.2.0
"""

import contextlib
import math
import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from dssr_core.errors import ClusterUnavailable, SchedulerTimeout

__all__ = ["CONTENT_TYPE", "SchedulerCall", "exposition", "scheduler_call", "set_scheduler_up",
           "snapshot_taken"]

#: What :func:`exposition` writes: Prometheus's text format 0.0.4, which every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Outcomes of a scheduler call.
OUTCOMES = ("ok", "error", "timeout")
#: Outcomes of a submission: a new job, a live job of that name answered again, refused (4xx:
#: the caller's or the scheduler's no), failed (5xx).
SUBMIT_OUTCOMES = ("new", "retried", "refused", "failed")
#: Why an SSH connection could not be made.
SSH_FAILURE_CAUSES = ("refused", "timeout", "auth", "host_key", "other")
#: Why a bearer was refused.
BEARER_REFUSALS = ("malformed", "expired", "signature", "issuer", "audience", "unknown_key",
                   "keys_unavailable", "other")

# Seconds: upstream's polls take milliseconds, a scheduler command over SSH tens of them.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SCHEDULER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

BUILD_INFO = Gauge("dssr_build_info", "Always 1: the running DSSR's version, connector and executor.",
                   ["version", "connector", "executor"])
HTTP_REQUESTS = Counter("dssr_http_requests", "HTTP requests answered, by route template, method and "
                        "status code.", ["route", "method", "code"])
HTTP_DURATION = Histogram("dssr_http_request_duration_seconds", "Seconds from a request's arrival to "
                          "its answer, by route template.", ["route"], buckets=_HTTP_BUCKETS)
SCHEDULER_UP = Gauge("dssr_scheduler_up", "1 when the connector's last contact with the scheduler "
                     "succeeded, 0 when it failed.")
SNAPSHOT_AGE = Gauge("dssr_scheduler_snapshot_age_seconds", "Seconds since the status snapshot that "
                     "listings are answered from was taken (NaN before the first).")
SCHEDULER_REQUESTS = Counter("dssr_scheduler_requests", "Calls to the scheduler, by operation and "
                             "outcome (ok, error, timeout).", ["operation", "outcome"])
SCHEDULER_DURATION = Histogram("dssr_scheduler_request_duration_seconds", "Seconds a call to the "
                               "scheduler took, by operation.", ["operation"], buckets=_SCHEDULER_BUCKETS)
JOBS = Gauge("dssr_jobs", "This DSSR's jobs in the last listing, by state: queued, running, and "
             "ended (not yet collected) once /ended was asked.", ["state"])
SUBMITS = Counter("dssr_submits", "Submissions, by outcome: new, retried (a live job of that name "
                  "answered), refused (4xx), failed (5xx).", ["outcome"])
SSH_OPEN = Gauge("dssr_ssh_connections", "SSH connections to the cluster open now.")
SSH_MADE = Counter("dssr_ssh_connections_made", "SSH connections made to the cluster.")
SSH_FAILURES = Counter("dssr_ssh_connection_failures", "SSH connections that could not be made, by "
                       "cause (refused, timeout, auth, host_key, other).", ["cause"])
TOKEN_FETCHES = Counter("dssr_slurmrestd_token_fetches", "slurmrestd tokens fetched or minted, by kind "
                        "(fetch: a new one; refresh: one renewed before or after it expired).", ["kind"])
TOKEN_FAILURES = Counter("dssr_slurmrestd_token_failures", "slurmrestd tokens that could not be "
                         "fetched or refreshed, by kind.", ["kind"])
BEARER_REFUSED = Counter("dssr_bearer_refused", "Portal users' bearers refused at /submit, by reason.",
                         ["reason"])
PROXY_CONNECTIONS = Gauge("dssr_proxy_connections", "Connections to interactive jobs' services open now.")
PROXY_BYTES = Counter("dssr_proxy_bytes", "Bytes relayed between users and interactive jobs, by "
                      "direction (to_job, from_job).", ["direction"])

_snapshot_at: float | None = None
SNAPSHOT_AGE.set_function(lambda: math.nan if _snapshot_at is None else time.monotonic() - _snapshot_at)

# Every fixed label value shows from the start (as 0): a rate() over a counter that appeared
# late misses its first increase, and the dashboard's panels are not empty.
for _outcome in SUBMIT_OUTCOMES:
    SUBMITS.labels(_outcome)
for _cause in SSH_FAILURE_CAUSES:
    SSH_FAILURES.labels(_cause)
for _state in ("queued", "running"):
    JOBS.labels(_state)
for _direction in ("to_job", "from_job"):
    PROXY_BYTES.labels(_direction)


class SchedulerCall:
    """One call under :func:`scheduler_call`; :meth:`failed` marks an answer that is an error."""

    __slots__ = ("operation", "outcome", "reachable")

    def __init__(self, operation: str):
        self.operation = operation
        self.outcome = "ok"
        self.reachable = True

    def failed(self, *, unreachable: bool = False) -> None:
        """The scheduler answered with an error (``unreachable``: its answer says it cannot be
        reached, e.g. a Slurm command that cannot contact slurmctld)."""
        self.outcome = "error"
        self.reachable = not unreachable


@contextlib.contextmanager
def scheduler_call(operation: str) -> Iterator[SchedulerCall]:
    """Time and count one call to the scheduler as ``operation``, and set ``dssr_scheduler_up``.

    ``operation`` names the command or API operation from a fixed set (``squeue``, ``sbatch``,
    ``GET /slurm/jobs``...), never a job or a user. Exceptions pass through, counted.
    """
    call = SchedulerCall(operation)
    started = time.perf_counter()
    try:
        yield call
    except (SchedulerTimeout, TimeoutError):
        call.outcome, call.reachable = "timeout", False
        raise
    except ClusterUnavailable:
        call.outcome, call.reachable = "error", False
        raise
    except BaseException:
        call.outcome = "error"
        raise
    finally:
        _child(SCHEDULER_DURATION, operation).observe(time.perf_counter() - started)
        _child(SCHEDULER_REQUESTS, operation, call.outcome).inc()
        SCHEDULER_UP.set(1 if call.reachable else 0)


def set_scheduler_up(up: bool) -> None:
    """Set ``dssr_scheduler_up`` outside a call (a connector with no scheduler is always up)."""
    SCHEDULER_UP.set(1 if up else 0)


def snapshot_taken() -> None:
    """A new status snapshot was taken now: ``dssr_scheduler_snapshot_age_seconds`` counts from here."""
    global _snapshot_at
    _snapshot_at = time.monotonic()


def exposition() -> bytes:
    """Every family in Prometheus's text format (:data:`CONTENT_TYPE`)."""
    return generate_latest()


# For DSSR's own code -------------------------------------------------------------------


def build_info(version: str, connector: str, executor: str) -> None:
    BUILD_INFO.labels(version, connector, executor).set(1)


def http_request(route: str, method: str, code: int, seconds: float) -> None:
    _child(HTTP_REQUESTS, route, method, str(code)).inc()
    _child(HTTP_DURATION, route).observe(seconds)


#: (family, label values) -> its child. prometheus-client's ``labels()`` checks and locks on every
#: call, twice the cost of the count itself; the label values come from fixed sets, so this
#: stays small.
_CHILDREN: dict = {}


def _child(family, *values: str):
    key = (family, values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN.setdefault(key, family.labels(*values))
    return child


#: The route label of a request a listener refused before it was routed (malformed, too large,
#: too slow); the app labels the rest by route template.
UNROUTED = "unrouted"
#: Methods that are labels as they are; any other is ``other`` (a method is the caller's word).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in HTTP_METHODS else "other"
