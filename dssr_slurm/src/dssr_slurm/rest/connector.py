"""The ``slurmrestd`` connector: Slurm over its REST API.

Jobs are submitted as the portal user's mapped cluster account (the users ID mapping shared
with slurm-cli), with the same srun-wrapped batch script; everything later on a job acts as
its owner as Slurm reports it. Listings and run status come from one shared snapshot: one
``GET /slurm/vX/jobs`` per interval, as the service account. The job logic both Slurm
connectors share is in :mod:`dssr_core.remote.base`; the API version's differences live in
:mod:`dssr_slurm.rest.versions`, the tokens in :mod:`dssr_slurm.rest.tokens`.
"""

import logging
import re
import threading
import time
from datetime import UTC, datetime

from dssr_core.audit import audit, portal_user_of
from dssr_core.connector import check_retried_submit
from dssr_core.errors import ClusterUnavailable, ConnectorError, SettingsError
from dssr_core.models import JobRef, Submission, SubmitResult
from dssr_core.remote.config import RemoteConfig
from dssr_core.remote.files import OutputAccess, SshFiles
from dssr_core.remote.jobs import JobRecord, matching
from dssr_core.remote.snapshot import StatusSnapshot
from dssr_core.remote.ssh import CLUSTER_ADDR, SshPool, SshSettings
from dssr_core.remote.states import is_live
from dssr_core.remote.users import Accounts, ClusterAccount, load_user_map
from dssr_slurm.base import SlurmConnector
from dssr_slurm.jobscript import batch_script
from dssr_slurm.jobspec import job_spec
from dssr_slurm.rest.client import Answer, RestClient
from dssr_slurm.rest.errors import failure, is_not_found, is_path_unknown
from dssr_slurm.rest.files import NoOutputAccess, SharedOutputAccess, ssh_account_for
from dssr_slurm.rest.listing import JobLists, raw_jobs, records_of
from dssr_slurm.rest.settings import RestSettings
from dssr_slurm.rest.tokens import Credentials, token_source
from dssr_slurm.rest.tunnel import SshTunnel
from dssr_slurm.rest.twins import MAX_PROBES, WRAPPED, TwinIndex
from dssr_slurm.rest.versions import PROBE_ORDER, ApiVersion, adapter, number

log = logging.getLogger(__name__)

#: "Job/step already completing or completed": terminating an ended job is not a failure.
ALREADY_DONE = 2021
_SLURM_PATH = re.compile(r"^/slurm/(v0\.0\.\d+)/")


class SlurmRestConnector(SlurmConnector):
    """Slurm through slurmrestd. Thread-safe: one HTTP session, one shared snapshot."""

    def __init__(self, settings):
        super().__init__()
        self.config = RemoteConfig.from_settings(settings)
        if not self.config.scratch_dir:
            raise SettingsError("JARVICE_JOB_SCRATCH_DIR must be set for the slurmrestd connector: jobs "
                                "submitted over REST start there and write their output there.")
        self.rest = RestSettings.from_settings(settings)
        self.user_map = load_user_map(settings)
        self.tokens = token_source(self.rest)
        self.accounts = Accounts(ClusterAccount(self.tokens.service_user), self.user_map,
                                 self.rest.username_claim)
        needs_ssh = self.rest.tunnel or self.rest.output_access == "ssh"
        self.ssh_settings = self._ssh_settings(settings) if needs_ssh else self._proxy_ssh_settings(settings)
        self.ssh = SshPool(self.ssh_settings) if self.ssh_settings is not None else None
        self.tunnel = self._tunnel()
        base_url = f"{self.rest.scheme}://{self.tunnel.url_host}" if self.tunnel else self.rest.url
        label = f"{self.rest.url} (through the SSH tunnel)" if self.tunnel else self.rest.url
        self.client = RestClient(base_url, connect_timeout=self.rest.connect_timeout,
                                 timeout=self.rest.timeout, retries=self.rest.retries,
                                 pool_size=self.rest.pool_size, label=label,
                                 transport_failure=self.tunnel.failure if self.tunnel else None)
        self.files = self._output_access()
        self.versions = VersionChooser(self.client, self.tokens, self.rest.api_version,
                                       self.rest.api_version_setting)
        self.twins = TwinIndex()
        self.lists = JobLists(self.client, self.tokens, self.twins)
        self.snapshot = StatusSnapshot(self._list_jobs, self.config.status_interval)
        self.versions.choose_at_start()

    def _ssh_settings(self, settings) -> SshSettings:
        try:
            return SshSettings.from_settings(settings)
        except SettingsError as error:
            why = ("JARVICE_SLURMRESTD_SSH_TUNNEL=true" if self.rest.tunnel
                   else "JARVICE_SLURMRESTD_OUTPUT_ACCESS=ssh" if self.rest.output_access == "ssh"
                   else "The proxy of interactive jobs (JARVICE_JOBS_DOMAIN)")
            raise SettingsError(f"{why} needs SSH to the cluster, set up as for slurm-cli: "
                                f"{error.message}") from None

    def _proxy_ssh_settings(self, settings) -> SshSettings | None:
        """SSH for the proxy of interactive jobs, when the settings for it are there (else None)."""
        if not self.config.proxied or not settings.read(CLUSTER_ADDR):
            return None
        return self._ssh_settings(settings)

    def _tunnel(self) -> SshTunnel | None:
        if not self.rest.tunnel:
            return None
        connection = self.ssh.connection(self.ssh_settings.service_account)
        return SshTunnel(connection, self.rest.address, self.rest.port, self.rest.connect_timeout)

    def _output_access(self) -> OutputAccess:
        if self.rest.output_access == "ssh":
            return SshFiles(self.ssh, ssh_account_for(self.user_map, self.ssh_settings.service_account))
        if self.rest.output_access == "shared":
            return SharedOutputAccess(self.config.scratch_dir,
                                      self.rest.shared_scratch_dir or self.config.scratch_dir)
        return NoOutputAccess()

    # Jobs -------------------------------------------------------------------------------

    def _submit(self, submission: Submission) -> SubmitResult:
        """Check for a live job of this name, submit, then check again for a twin.

        Another replica may submit the same job between our check and our submit (slurmrestd
        has no lock to hold across two requests; the base class's lock is this process's only).
        Every job goes in with ``dependency=singleton``, so of two live jobs of one name and
        user the later cannot start before the earlier has ended; the check after the submit
        keeps the one Slurm numbered first and cancels ours if it is not that one. Both
        replicas answer its id.
        """
        spec = job_spec(submission, self.config.scratch_dir, working_directory=self.config.scratch_dir,
                        environment={"PATH": self.rest.job_path}, singleton=True)
        script = batch_script(submission.script, self.config.scratch_dir, submission.name,
                              submission.success_marker)
        account = self.accounts.for_submission(submission)
        credentials = self.tokens.credentials(account.user, submission.bearer)
        version = self.versions.current()
        body = version.submit_body(script, spec)  # before Slurm is asked: a device it lacks is refused
        existing = self._live_jobs_named(submission.name, version)
        if existing:
            check_retried_submit(submission.name, existing[0].jobid, existing[0].fingerprint,
                                 submission.fingerprint)
            log.info("job %s/%s is already in Slurm as %s; not submitted again",
                     submission.name, submission.number, existing[0].jobid)
            self.snapshot.invalidate()  # the next listing shows the job whose id we answer
            return SubmitResult(jobid=existing[0].jobid, script=submission.script, existing=True)
        what = f"submitting {submission.name} as {credentials.user}"
        answer = self.client.post(version.submit_path, credentials, what, body)
        jobid = version.submitted_id(answer.body)
        if jobid is None or answer.status >= 400:
            raise failure(answer, what, self.tokens, credentials.user, job_request=True)
        _log_notes(answer, f"job {jobid}")
        audit("submit", jobid, submission.name, credentials.user, portal_user_of(submission))
        self.snapshot.invalidate()
        return SubmitResult(jobid=self._first_of_twins(submission, jobid, credentials, version),
                            script=submission.script)

    def _first_of_twins(self, submission: Submission, jobid: str, credentials: Credentials,
                        version: ApiVersion) -> str:
        """The id to answer for the job just submitted as ``jobid``: the lowest id of the live jobs
        of its name; ours is cancelled when it is not that one (a twin that lost the race)."""
        try:
            live = self._live_jobs_named(submission.name, version, jobid)
        except (ClusterUnavailable, ConnectorError) as error:
            log.warning("job %s/%s was submitted as %s, but the check for a twin from another replica "
                        "failed (%s); singleton keeps a twin waiting", submission.name, submission.number,
                        jobid, error.message)
            return jobid
        first = min([int(record.jobid) for record in live] + [int(jobid)])
        if first == int(jobid):
            return jobid
        what = f"cancelling job {jobid}, a twin of {first}, as {credentials.user}"
        answer = self.client.delete(version.job_path(jobid), credentials, what)
        if answer.ok or is_not_found(answer) or _already_done(answer):
            log.info("job %s/%s was submitted by another replica too, as %s: our %s is cancelled",
                     submission.name, submission.number, first, jobid)
        else:
            log.warning("job %s/%s was submitted by another replica too, as %s, and our %s could not be "
                        "cancelled (%s): it waits (singleton) until %s ends", submission.name,
                        submission.number, first, jobid, failure(answer, what, self.tokens,
                                                                 credentials.user).message, first)
        return str(first)

    # Cluster ----------------------------------------------------------------------------

    def check(self) -> str:
        version = self.versions.current()
        credentials = self.tokens.service()
        what = f"pinging as {credentials.user}"
        answer = self.client.get(version.ping_path, credentials, what)
        if not answer.ok:
            raise failure(answer, what, self.tokens, credentials.user)
        if not version.controller_up(answer.body):
            raise ClusterUnavailable(f"slurmrestd at {self.client.label} answers, but no slurmctld does "
                                     f"({_pings(answer.body)}).")
        return (f"slurmrestd {self.client.label}, API {version.name}, Slurm {slurm_release(answer.body)}, "
                f"controller up ({_pings(answer.body)}), as {credentials.user}")

    def report(self) -> list[tuple[str, str]]:
        where = self.rest.url
        if self.tunnel is not None:
            where += (f" through an SSH tunnel via {self.tunnel.connection.where} "
                      f"(local port {self.tunnel.port})")
        ssh = [("SSH host key", self.ssh_settings.host_key_check.describe())] if self.ssh_settings else []
        return [
            ("slurmrestd", where),
            ("API version", self.versions.describe()),
            ("token mode", self.tokens.describe()),
            ("users ID mapping", self.accounts.describe()),
            ("job PATH", self.rest.job_path),
            ("scratch dir", self.config.scratch_dir),
            ("output access", self.files.describe()),
            ("status interval", f"{self.config.status_interval:g} s"),
            ("HTTP", f"timeout {self.rest.timeout:g} s, {self.rest.retries} retries for reads, "
                     f"pool of {self.rest.pool_size} connections"),
            *self.config.chart_report(),
        ] + ssh

    def _forward_connection(self):
        if self.ssh is None:
            return super()._forward_connection()
        return self.ssh.connection(self.ssh_settings.service_account)

    def _no_proxy_reason(self) -> str:
        if self.ssh is not None:
            return ""
        return ("DSSR's proxy reaches interactive jobs over SSH through the login node: set "
                "JARVICE_SLURM_CLUSTER_ADDR, JARVICE_SLURM_SSH_USER and JARVICE_SLURM_SSH_PKEY "
                "(as for slurm-cli) to open this job's URL.")

    def close(self) -> None:
        super().close()
        self.client.close()
        if self.tunnel is not None:
            self.tunnel.close()
        if self.ssh is not None:
            self.ssh.close()

    # What slurmrestd answers ------------------------------------------------------------

    def _list_jobs(self) -> list[JobRecord]:
        return self.lists.read(self.versions.current())

    def _controller_record(self, job: JobRef) -> JobRecord | None:
        version = self.versions.current()
        raw = self._raw_job(job, version)
        return version.job_record(raw, time.time()) if raw is not None else None

    def _accounting_record(self, job: JobRef) -> JobRecord | None:
        version = self.versions.current()
        raw = self._raw_db_job(job, version)
        return version.db_record(raw) if raw is not None else None

    def _cancel(self, record: JobRecord) -> None:
        version = self.versions.current()
        credentials = self._owner(record)
        what = f"cancelling job {record.jobid} as {credentials.user}"
        answer = self.client.delete(version.job_path(record.jobid), credentials, what)
        if not answer.ok and not is_not_found(answer) and not _already_done(answer):
            raise failure(answer, what, self.tokens, credentials.user)
        audit("terminate", record.jobid, record.name, credentials.user)

    def _release(self, record: JobRecord) -> None:
        version = self.versions.current()
        credentials = self._owner(record)
        what = f"releasing job {record.jobid} as {credentials.user}"
        answer = self.client.post(version.job_path(record.jobid), credentials, what, version.release_body())
        if not answer.ok:
            raise failure(answer, what, self.tokens, credentials.user, job_request=True)
        audit("release", record.jobid, record.name, credentials.user)

    def _events_text(self, job: JobRef) -> str | None:
        version = self.versions.current()
        raw = self._raw_job(job, version) or self._raw_db_job(job, version)
        return job_text(raw) if raw is not None else None

    # Helpers ----------------------------------------------------------------------------

    def _owner(self, record: JobRecord) -> Credentials:
        """The credentials that act on a job: its owner's when mapped, else the service account's."""
        return self.tokens.credentials(self.accounts.for_owner(record.user).user)

    def _live_jobs_named(self, name: str, version: ApiVersion,
                         submitted: str | None = None) -> list[JobRecord]:
        """The queued or running jobs of this name, lowest id first, each read fresh from Slurm.

        The candidates are those :attr:`twins` knows (the last job list, and the ids read since);
        with ``submitted`` (the id our submit just got), the ids between what it knows and ours are
        read first, so a twin submitted before ours is among them (see :mod:`dssr_slurm.rest.twins`).
        """
        fresh: dict[str, JobRecord] = {}
        if submitted is not None:
            fresh = self._read_ids_up_to(int(submitted), name, version)
        elif self.twins.upto is None:
            self.snapshot.get()  # the first job list of this process (shared with the listings)
        live = []
        for known in self.twins.named(name, int(submitted) if submitted is not None else None):
            record = fresh.get(known.jobid) or (known if known.jobid == submitted else
                                                self._controller_record(JobRef(name, 0, known.jobid)))
            if record is not None and is_live(record.state):
                live.append(record)
            else:
                self.twins.ended(known)
        return live

    def _read_ids_up_to(self, jobid: int, name: str, version: ApiVersion) -> dict[str, JobRecord]:
        """Read the job ids between what :attr:`twins` knows and ``jobid`` (ours, named ``name``), one by
        one, or the whole job list when there are more than :data:`MAX_PROBES`; the records read, by id."""
        known = self.twins.upto
        if known is not None and 0 <= known - jobid <= WRAPPED:  # a list taken after our submit has them
            return {}
        if known is None or not 0 <= jobid - known <= MAX_PROBES + 1:  # far ahead, or the ids wrapped
            return {record.jobid: record for record in self._list_jobs()}
        found = [record for probe in range(known + 1, jobid) for record in self._probe(probe, version)]
        ours = JobRecord(jobid=str(jobid), name=name, user="", state="PENDING")
        self.twins.learned([*found, ours], jobid)
        return {record.jobid: record for record in found}

    def _probe(self, jobid: int, version: ApiVersion) -> list[JobRecord]:
        """The jobs of ours the controller lists under ``jobid`` (none when it knows no such job)."""
        credentials = self.tokens.service()
        what = f"reading job {jobid} (looking for a twin)"
        answer = self.client.get(version.job_path(str(jobid)), credentials, what)
        if is_not_found(answer):
            return []
        if not answer.ok:
            raise failure(answer, what, self.tokens, credentials.user)
        return records_of(version, answer)

    def _raw_job(self, job: JobRef, version: ApiVersion) -> dict | None:
        """The controller's record of ``job`` (same id and name), or None when it forgot it."""
        credentials = self.tokens.service()
        what = f"reading job {job.jobid}"
        answer = self.client.get(version.job_path(job.jobid), credentials, what)
        if is_not_found(answer):
            return None
        if not answer.ok:
            raise failure(answer, what, self.tokens, credentials.user)
        return matching(job, raw_jobs(answer), lambda raw: version.job_record(raw, time.time()))

    def _raw_db_job(self, job: JobRef, version: ApiVersion) -> dict | None:
        """Accounting's record of ``job``, or None (unknown, or slurmrestd serves no accounting)."""
        credentials = self.tokens.service()
        what = f"reading job {job.jobid} from accounting"
        answer = self.client.get(version.db_job_path(job.jobid), credentials, what)
        if is_path_unknown(answer):
            log.info("slurmrestd serves no accounting (slurmdb/%s); job %s is taken as unknown",
                     version.name, job)
            return None
        if is_not_found(answer):
            return None
        if not answer.ok:
            raise failure(answer, what, self.tokens, credentials.user)
        return matching(job, raw_jobs(answer), version.db_record)


class VersionChooser:
    """The API version: pinned, or ``auto``: the newest DSSR speaks of those slurmrestd advertises
    in ``/openapi.json``, else (no such document) the newest whose ping answers; chosen once, logged."""

    def __init__(self, client: RestClient, tokens, pinned: str | None,
                 setting: str = "JARVICE_SLURMRESTD_API_VERSION"):
        self.client = client
        self.tokens = tokens
        self.pinned = pinned
        self.setting = setting
        self._lock = threading.Lock()
        self._chosen: ApiVersion | None = adapter(pinned) if pinned and pinned in PROBE_ORDER else None
        if pinned and self._chosen is None:
            raise SettingsError(f"{setting}={pinned} is not one DSSR speaks; use auto or one of "
                                f"{', '.join(sorted(PROBE_ORDER))}.")
        self._how = ""
        self._failure = ""

    def choose_at_start(self) -> None:
        """Choose now; when slurmrestd does not answer, log it and choose at the first request."""
        try:
            self.current()
        except (ClusterUnavailable, ConnectorError) as error:
            self._failure = error.message
            log.warning("slurmrestd API version not chosen yet: %s", error.message)

    def current(self) -> ApiVersion:
        with self._lock:
            if self._chosen is None:
                self._chosen, self._how = self._choose()
                log.info("slurmrestd at %s: using API %s, %s", self.client.label, self._chosen.name,
                         self._how)
            return self._chosen

    def describe(self) -> str:
        if self.pinned:
            return f"{self.pinned} ({self.setting})"
        if self._chosen is not None:
            return f"{self._chosen.name} (auto: {self._how})"
        return f"not chosen yet ({self._failure}); chosen at the first request"

    def _choose(self) -> tuple[ApiVersion, str]:
        credentials = self.tokens.service()
        what = "reading the API versions slurmrestd serves (/openapi.json)"
        answer = self.client.get("/openapi.json", credentials, what)
        if answer.status in (401, 403):
            raise failure(answer, what, self.tokens, credentials.user)
        advertised = advertised_versions(answer.body) if answer.ok else []
        if not advertised:
            return self._probe(), (f"the newest of {', '.join(PROBE_ORDER)} that answers ping "
                                   f"(/openapi.json: HTTP {answer.status}, no API version in it)")
        spoken = [name for name in PROBE_ORDER if name in advertised]
        if not spoken:
            raise ConnectorError(f"slurmrestd at {self.client.label} advertises the API versions "
                                 f"{', '.join(advertised)} in /openapi.json, none of which DSSR speaks "
                                 f"({', '.join(PROBE_ORDER)}).")
        return adapter(spoken[0]), (f"the newest DSSR speaks of those /openapi.json advertises "
                                    f"({', '.join(advertised)})")

    def _probe(self) -> ApiVersion:
        credentials = self.tokens.service()
        for name in PROBE_ORDER:
            what = f"probing API {name}"
            answer = self.client.get(f"/slurm/{name}/ping", credentials, what)
            if answer.status == 404:
                continue
            if answer.status in (401, 403):
                raise failure(answer, what, self.tokens, credentials.user)
            return adapter(name)
        raise ConnectorError(f"slurmrestd at {self.client.label} serves none of the API versions DSSR "
                             f"speaks ({', '.join(PROBE_ORDER)}); start it with -s openapi/v0.0.38 or newer.")


def advertised_versions(openapi: dict) -> list[str]:
    """The API versions an OpenAPI document of slurmrestd has paths for (``/slurm/v0.0.42/...``),
    oldest first."""
    paths = openapi.get("paths")
    if not isinstance(paths, dict):
        return []
    found = {match.group(1) for path in paths if (match := _SLURM_PATH.match(path))}
    return sorted(found, key=lambda name: tuple(int(part) for part in name[1:].split(".")))


# Reading answers ------------------------------------------------------------------------


def _already_done(answer: Answer) -> bool:
    return any(error.get("error_number", error.get("error_code")) == ALREADY_DONE for error in answer.errors)


def _log_notes(answer: Answer, about: str) -> None:
    for note in answer.errors + answer.warnings:
        words = note.get("error") or note.get("description")
        if words:
            log.info("slurmrestd about %s: %s", about, words)


def slurm_release(body: dict) -> str:
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    slurm = meta.get("Slurm") or meta.get("slurm") or {}
    release = slurm.get("release") if isinstance(slurm, dict) else None
    return str(release or "of unknown release")


def _pings(body: dict) -> str:
    shown = []
    for ping in body.get("pings") or []:
        if isinstance(ping, dict):
            state = ping.get("ping") or ping.get("pinged") or ("UP" if ping.get("responding") else "DOWN")
            # v0.0.45 (26.05) dropped "pinged" and says why a controller is down in "status"
            # (a refused token reads "Protocol authentication error").
            why = ping.get("status") if state != "UP" and ping.get("status") not in (None, "No error") else ""
            shown.append(f"{ping.get('hostname', '?')} {state}" + (f" ({why})" if why else ""))
    return ", ".join(shown) or "no controller listed"


def job_text(raw: dict) -> str:
    """A job record as ``key=value`` lines, the way ``scontrol show job`` reads."""
    lines = []
    for key, value in raw.items():
        shown = _shown(key, value)
        if shown not in ("", "[]", "{}"):
            lines.append(f"{key}={shown}")
    return "\n".join(lines) + "\n"


def _shown(key: str, value) -> str:
    if isinstance(value, dict) and "number" in value and "set" in value:
        if value.get("infinite"):
            return "UNLIMITED"
        value = number(value)
        if value is None:
            return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and key.endswith("_time") and value > 0:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list):
        return ",".join(_shown(key, item) for item in value)
    if isinstance(value, dict):
        parts = [f"{name}:{_shown(name, item)}" for name, item in value.items()]
        return "{" + " ".join(part for part in parts if not part.endswith(":")) + "}"
    return "" if value is None else str(value)
