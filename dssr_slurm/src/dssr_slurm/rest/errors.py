"""slurmrestd's failures -> DSSR's errors, with Slurm's own words.

slurmrestd reports failures in ``errors[]`` (``error_number`` or ``error_code``, ``error``,
``description``) and, from 23.02 on, in the HTTP status; 22.05 answers 500 for nearly every
failure. The classes:

- the caller's or the job's fault (an unknown partition, a malformed field): SchedulerRejected
  (422) when submitting or updating a job;
- a job Slurm does not know (2017): JobNotFound;
- the token refused (HTTP 401/403, 1007, 6000-6999): TokenRefused (500), naming the token mode;
- Slurm not answering slurmrestd (1001-1006, 1800-1804, 5004): ClusterUnavailable (503);
- 22.05's ambiguous answers (-1 "Unspecified error", 5005 "Zero Bytes were transmitted"), given
  both when slurmctld is down and when it refused the token: ClusterUnavailable with both
  causes in the sentence;
- accounting not reached (7000 "Unable to connect to database", HTTP 502 from 24.11 on), also
  the answer to a refused token on ``/slurmdb/``: TokenRefused when Slurm says "authentication
  error" (24.11), else ClusterUnavailable with both causes (26.05 does not say which);
- anything else: ConnectorError (500).
"""

from dssr_core.errors import ClusterUnavailable, ConnectorError, DssrError, JobNotFound, SchedulerRejected
from dssr_slurm.rest.client import Answer
from dssr_slurm.rest.tokens import TokenRefused

INVALID_JOB_ID = 2017
EMPTY_RESULT = 9003  # "Nothing found with query": accounting has no such job
JOB_HELD = 2042  # "Job is in held state, pending scheduler release": a submit answer, not a failure
AUTHENTICATION = frozenset({1007})
UNREACHABLE = frozenset({1001, 1002, 1003, 1004, 1005, 1006, 1800, 1801, 1802, 1803, 1804, 5004})
AMBIGUOUS = frozenset({-1, 5005})
DB_UNREACHABLE = 7000


def error_numbers(answer: Answer) -> list[int]:
    numbers = []
    for error in answer.errors:
        value = error.get("error_number", error.get("error_code"))
        if isinstance(value, int) and not isinstance(value, bool):
            numbers.append(value)
    return numbers


def command_message(answer: Answer) -> str:
    """Slurm's words: each error's ``error`` and ``description``, joined."""
    parts = []
    for error in answer.errors:
        words = [str(error.get(key)).strip() for key in ("error", "description") if error.get(key)]
        words = [word for index, word in enumerate(words) if word not in words[:index]]
        if words:
            parts.append(" - ".join(words))
    if parts:
        return "; ".join(dict.fromkeys(parts))
    return answer.text.strip().splitlines()[0][:200] if answer.text.strip() else f"HTTP {answer.status}"


def is_not_found(answer: Answer) -> bool:
    """Whether slurmrestd says it does not know the job (2017, 9003; a JSON 404 from 23.02 on)."""
    numbers = error_numbers(answer)
    if INVALID_JOB_ID in numbers or EMPTY_RESULT in numbers:
        return True
    return answer.status == 404 and bool(answer.body)


def is_path_unknown(answer: Answer) -> bool:
    """A 404 without a JSON body: slurmrestd does not serve this path (plugin not loaded)."""
    return answer.status == 404 and not answer.body


def failure(answer: Answer, what: str, tokens, user: str, *, job_request: bool = False) -> DssrError:
    """The error for a failed answer. ``job_request``: Slurm's refusals are the job's fault (422)."""
    numbers = set(error_numbers(answer))
    message = command_message(answer)
    if answer.status in (401, 403) or numbers & AUTHENTICATION or any(6000 <= n < 7000 for n in numbers):
        return TokenRefused(f"slurmrestd did not accept the token of {user} while {what} ({message}; "
                            f"token mode {tokens.mode}).", detail=tokens.hint())
    if INVALID_JOB_ID in numbers:
        return JobNotFound(f"Slurm does not know the job ({message}) while {what}.")
    if numbers & UNREACHABLE:
        return ClusterUnavailable(f"Slurm did not answer slurmrestd while {what}: {message}.")
    if DB_UNREACHABLE in numbers:
        return _accounting_failure(message, what, tokens, user)
    if numbers & AMBIGUOUS:
        return ClusterUnavailable(
            f"Slurm did not give slurmrestd an answer while {what} ({message}): slurmctld is not answering, "
            f"or it refused the token of {user} (token mode {tokens.mode}).", detail=tokens.hint())
    if is_path_unknown(answer):
        return ConnectorError(f"slurmrestd does not serve this request while {what} ({message}); "
                              "check its -s plugin list and JARVICE_SLURMRESTD_API_VERSION.")
    if answer.status in (502, 503, 504):
        return ClusterUnavailable(f"slurmrestd answered HTTP {answer.status} while {what}: {message}.")
    if job_request and numbers:
        return SchedulerRejected(f"Slurm refused the job while {what}: {message}.")
    return ConnectorError(f"slurmrestd failed while {what}: {message} (HTTP {answer.status}).")


def _accounting_failure(message: str, what: str, tokens, user: str) -> DssrError:
    # 24.11 (v0.0.40 to v0.0.42) answers a refused token on /slurmdb/ with 502, error 7000 and
    # "Failed to open slurmdbd connection, authentication error"; 26.05 (v0.0.42 to v0.0.45)
    # leaves out ", authentication error", so a refused token reads like slurmdbd being down.
    if "authentication" in message.lower():
        return TokenRefused(f"slurmrestd did not accept the token of {user} while {what} ({message}; "
                            f"token mode {tokens.mode}): {tokens.hint()}.")
    return ClusterUnavailable(
        f"slurmrestd could not open accounting while {what} ({message}): slurmdbd is not answering, "
        f"or it refused the token of {user} (token mode {tokens.mode}: {tokens.hint()}).")
