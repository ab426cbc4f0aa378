"""slurmrestd's recorded failures become the errors upstream should see, with Slurm's words."""

import jwt
import pytest
from rest_fixtures import LIVE_RECORDED, recorded

from dssr_core.errors import ClusterUnavailable, ConnectorError, JobNotFound, SchedulerRejected
from dssr_slurm.rest.client import Answer
from dssr_slurm.rest.errors import command_message, failure, is_not_found, is_path_unknown
from dssr_slurm.rest.tokens import StaticToken, TokenRefused

SECRET = jwt.encode({"sun": "jarvice", "exp": 4_000_000_000}, "k" * 32, algorithm="HS256")
TOKENS = StaticToken(SECRET)


def answer(version: str, name: str) -> Answer:
    data = recorded(version, name)
    return Answer(data["status"], data.get("body") or {}, data.get("text", ""))


def error_for(version, name, **kwargs):
    error = failure(answer(version, name), "doing something", TOKENS, "kirby", **kwargs)
    assert SECRET not in error.message
    return error


def test_rejected_job_is_the_callers_422_with_slurms_words():
    error = error_for("v0.0.38", "submit-bad-partition", job_request=True)
    assert isinstance(error, SchedulerRejected) and "Invalid partition name specified" in error.message
    for version in ("v0.0.40", "v0.0.41", "v0.0.42", *LIVE_RECORDED):
        assert isinstance(error_for(version, "submit-bad-partition", job_request=True), SchedulerRejected)
    for version in LIVE_RECORDED:
        error = error_for(version, "submit-no-environment", job_request=True)
        assert isinstance(error, SchedulerRejected) and "Environment is missing in job" in error.message


def test_parse_failures_name_the_field():
    error = error_for("v0.0.38", "submit-unknown-field", job_request=True)
    assert isinstance(error, SchedulerRejected) and 'Unknown key "bogus"' in error.message
    no_environment = error_for("v0.0.38", "submit-no-environment", job_request=True)
    assert "environment must be set" in no_environment.message


def test_unauthenticated_and_refused_tokens_name_the_mode():
    live = [(version, name) for version in LIVE_RECORDED
            for name in ("ping-unauthenticated", "jobs-token-refused", "jobs-expired-token")]
    for version, name in (("v0.0.38", "ping-unauthenticated"), ("v0.0.40", "jobs-token-refused"),
                          ("v0.0.42", "jobs-token-refused"), ("v0.0.38", "db-job-expired-token"), *live):
        error = error_for(version, name)
        assert isinstance(error, TokenRefused), (version, name)
        assert "token mode static" in error.message


def test_22_05_expired_token_reads_like_an_unreachable_controller():
    """22.05 answers an expired token with -1 "Unspecified error", as when slurmctld is down."""
    for name in ("ping-expired-token", "jobs-expired-token"):
        error = error_for("v0.0.38", name)
        assert isinstance(error, ClusterUnavailable)
        assert "slurmctld is not answering, or it refused the token" in error.message
        assert "token mode static" in error.message


def test_accounting_refusing_a_token_names_both_causes_from_24_11_on():
    """A refused token on /slurmdb/ is HTTP 502 with 7000 "Unable to connect to database"."""
    for version in LIVE_RECORDED:  # 26.05 does not say why
        error = error_for(version, "db-job-expired-token")
        assert isinstance(error, ClusterUnavailable), version
        assert "slurmdbd is not answering, or it refused the token of kirby" in error.message
        assert "token mode static" in error.message
    said_by_24_11 = Answer(502, {"errors": [{"error_number": 7000, "error": "Unable to connect to database",
                                             "description": "Failed to open slurmdbd connection, "
                                                            "authentication error"}]})
    assert isinstance(failure(said_by_24_11, "reading", TOKENS, "kirby"), TokenRefused)


def test_unknown_jobs():
    live = [(version, name) for version in LIVE_RECORDED for name in ("job-purged", "job-unknown")]
    for version, name in (("v0.0.38", "job-purged"), ("v0.0.38", "job-unknown"),
                          ("v0.0.38", "db-job-unknown"), ("v0.0.40", "job-purged"),
                          ("v0.0.42", "job-purged"), *live):
        assert is_not_found(answer(version, name)), (version, name)
    assert isinstance(error_for("v0.0.38", "job-purged"), JobNotFound)
    assert not is_not_found(answer("v0.0.38", "jobs-expired-token"))
    assert not is_not_found(answer("v0.0.38", "path-unknown"))


def test_a_version_not_served_is_a_path_unknown():
    assert is_path_unknown(answer("v0.0.38", "path-unknown"))
    error = error_for("v0.0.38", "path-unknown")
    assert isinstance(error, ConnectorError) and "-s plugin list" in error.message


@pytest.mark.parametrize(("status", "errors", "kind"), [
    (500, [{"error_code": 1800, "error": "Unable to contact slurm controller (connect failure)"}],
     ClusterUnavailable),
    (500, [{"error_number": 5004, "error": "Socket timed out on send/recv operation"}], ClusterUnavailable),
    (503, [], ClusterUnavailable),
    (500, [{"error_number": 2002, "error": "Access/permission denied"}], ConnectorError),
    (500, [{"error_number": 6002, "error": "Invalid authentication credential"}], TokenRefused),
])
def test_classes_of_failures(status, errors, kind):
    error = failure(Answer(status, {"errors": errors}), "doing something", TOKENS, "kirby")
    assert type(error) is kind


def test_message_joins_slurms_words_once():
    message = command_message(answer("v0.0.38", "job-purged"))
    assert message.startswith("Invalid job id specified - Unable to find JobId=")
    assert command_message(Answer(502, {}, "")) == "HTTP 502"
