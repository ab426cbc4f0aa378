"""Grid Engine's command-line tools: the command lines DSSR runs and how their answers are read.

Every value that reaches the remote shell goes through ``shlex.quote`` (``quote_command``);
job ids are checked to be digits before they get here. ``qstat -xml`` is read with the
standard library's XML parser (it comes from the cluster, never from upstream).
"""

import datetime
import logging
import xml.etree.ElementTree as ElementTree

from dssr_core.errors import ClusterUnavailable, ConnectorError
from dssr_core.remote.jobs import JobRecord, interactive_fields, scheduler_job_name, upstream_name
from dssr_core.remote.login import locked_submit, submit_answer
from dssr_core.remote.ssh import CommandResult, command_message, quote_command
from dssr_gridengine.states import ended_state, live_state

log = logging.getLogger(__name__)

#: Words in Grid Engine's error output that mean qmaster did not answer.
UNREACHABLE = ("unable to contact qmaster", "commlib error", "can't unpack gdi request",
               "failed receiving gdi request", "unable to send message to qmaster", "cell directory",
               "connection refused", "got select error", "endpoint is not unique")
#: What qstat -j, qdel and qrls say of a job qmaster does not know (any more).
NO_SUCH_JOB = ("do not exist", "does not exist")
#: The line between the two parts of :func:`status`'s answer.
SEPARATOR = "--dssr--"


def status() -> str:
    """The cluster's clock, then every live job of every user as XML (qstat -u '*' -xml).

    The clock comes along because qstat writes start times in the cluster's local time, without
    a time zone: elapsed times are worked out against the cluster's own clock.
    """
    return f"date +%Y-%m-%dT%H:%M:%S && echo {SEPARATOR} && {quote_command('qstat', '-u', '*', '-xml')}"


def zombies() -> str:
    """The jobs qmaster remembers as ended (its ``finished_jobs``), as XML: a job deleted while it
    waited is there and never in accounting."""
    return quote_command("qstat", "-s", "z", "-u", "*", "-xml")


def job_details(jobids: list[str]) -> str:
    """qstat -j of these jobs as XML: their context (an interactive job's port and number)."""
    return quote_command("qstat", "-xml", "-j", ",".join(jobids))


def accounting(jobid: str) -> str:
    """qacct's records of the job id (ids are reused after a qmaster's restart: several may come)."""
    return quote_command("qacct", "-j", jobid)


def submit(name: str, qsub_arguments: list[str], lock_wait: float) -> str:
    """One remote command: under the submit lock, answer the id of a live job of this name (a
    fresh qstat), else qsub with the script on stdin. ``qstat -xml`` lists the job number before
    the name, so awk remembers the last number and prints it at a matching name."""
    job_name = scheduler_job_name(name)  # letters, digits, '.', '_', '-': nothing awk or XML escapes
    find_live = (f"{quote_command('qstat', '-u', '*', '-xml')} | awk -v name={quote_command(job_name)} "
                 "'/<JB_job_number>/ {gsub(/[^0-9]/, \"\"); id = $0} "
                 "$0 ~ \"<JB_name>\" name \"</JB_name>\" {print id}'")
    # qstat exits 0 with nothing to list; a pipe hides its failure, so pipefail.
    find_live = f"set -o pipefail; {find_live}"
    return locked_submit(name, find_live, f"qsub {quote_command(*qsub_arguments)}", lock_wait)


def cluster_check() -> str:
    return "qstat -help | head -n 1 && qstat -g c"


# Reading answers ------------------------------------------------------------------------


def is_unreachable(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in UNREACHABLE)


def failed(program: str, result: CommandResult) -> Exception:
    """The error for a command that failed where it should not: 503 with Grid Engine's words."""
    message = command_message(result)
    message = message if message.endswith(".") else message + "."
    if is_unreachable(message):
        return ClusterUnavailable(f"Grid Engine does not answer ({program}): {message}")
    return ClusterUnavailable(f"{program} failed on the cluster: {message}")


def is_unknown_job(result: CommandResult) -> bool:
    """Whether a failed qstat -j, qdel or qrls failed because qmaster knows no such job."""
    text = (result.stderr + result.stdout).lower()
    return not result.ok and any(words in text for words in NO_SUCH_JOB) and not is_unreachable(text)


def parse_status(text: str) -> list[JobRecord]:
    """Our jobs (named ``jarvice_<name>``) in :func:`status`'s (or :func:`zombies`') answer; others
    are skipped."""
    clock, _, document = text.rpartition(SEPARATOR)
    now = _local_time(clock.strip())
    try:
        root = ElementTree.fromstring(document.strip())
    except ElementTree.ParseError as error:
        raise ConnectorError(f"qstat -xml answered something that is not XML ({error}).") from None
    records = []
    for job in root.iter("job_list"):
        name = upstream_name(job.findtext("JB_name") or "")
        jobid = (job.findtext("JB_job_number") or "").strip()
        if name is None or not jobid.isdigit():
            continue
        state = live_state(job.findtext("state") or "")
        queue = job.findtext("queue_name") or ""
        host = queue.partition("@")[2]
        started = _local_time(job.findtext("JAT_start_time") or "")
        elapsed = int((now - started).total_seconds()) if now and started else 0
        records.append(JobRecord(jobid=jobid, name=name, user=job.findtext("JB_owner") or "", state=state,
                                 elapsed_s=max(elapsed, 0), nodes=(host,) if host else ()))
    return records


def parse_contexts(text: str) -> dict[str, dict]:
    """Each job's :class:`JobRecord` fields from its context (service port, job number), by job id."""
    try:
        root = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError:
        return {}
    found = {}
    for job in root.iter("djob_info"):
        for element in job:
            jobid = (element.findtext("JB_job_number") or "").strip()
            if not jobid:
                continue
            pairs = [f"{item.findtext('VA_variable')}={item.findtext('VA_value')}"
                     for item in element.iter("context_list")]
            found[jobid] = interactive_fields(",".join(pairs))
    return found


def parse_accounting(text: str) -> list[JobRecord]:
    """Our jobs in qacct -j's answer, one record per block, in the order qacct gives them."""
    records = []
    for block in text.split("\n=====")[0:]:
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            if key and not key.startswith("="):
                fields[key] = value.strip()
        name = upstream_name(fields.get("jobname", ""))
        jobid = fields.get("jobnumber", "")
        if name is None or not jobid.isdigit():
            continue
        exit_status = _int(fields.get("exit_status", ""))
        records.append(JobRecord(jobid=jobid, name=name, user=fields.get("owner", ""),
                                 state=ended_state(fields.get("failed", "0"), exit_status),
                                 elapsed_s=_int(fields.get("ru_wallclock", "").rstrip("s")) or 0,
                                 nodes=(fields["hostname"],) if fields.get("hostname") else (),
                                 exit_code=exit_status))
    return records


def parse_submit(result: CommandResult, name: str) -> tuple[str, bool]:
    """The job id from :func:`submit`'s answer for job ``name``, and whether it was an existing job."""
    return submit_answer(result, name, "Grid Engine", "qsub", is_unreachable,
                         lambda result: failed("qstat", result))


def _local_time(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None
