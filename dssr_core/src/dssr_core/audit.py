"""The audit trail: one line per action taken on the cluster for a portal user, on the logger
``dssr.audit`` at INFO, so that a site can route it apart from the rest of the log.

A line names the action, the job, the cluster user the action ran as and the portal user it
was for; never a token or any other secret::

    submit job 4021 (jarvice-kirby-42) as cluster user kirby for portal user kirby@example.org
"""

import logging

audit_log = logging.getLogger("dssr.audit")

#: Said for the portal user of actions upstream sends without a bearer (terminate, release).
NOT_NAMED = "not named by upstream"
NO_BEARER = "none (no bearer)"


def audit(action: str, jobid: str, name: str, cluster_user: str, portal_user: str | None = None) -> None:
    """Log one action: ``submit``, ``terminate`` or ``release`` of ``jobid`` (``name`` is
    upstream's name of the job) as ``cluster_user`` for ``portal_user``."""
    audit_log.info("%s job %s (%s) as cluster user %s for portal user %s", action, jobid, name, cluster_user,
                   portal_user or NOT_NAMED)


def portal_user_of(submission) -> str:
    """How a submission names its portal user: the bearer's e-mail, else its user name or subject."""
    if submission.bearer is None:
        return NO_BEARER
    for value in (submission.user_email, submission.bearer_claims.get("preferred_username"),
                  submission.bearer_claims.get("sub")):
        if isinstance(value, str) and value:
            return value
    return "(a bearer that names nobody)"
