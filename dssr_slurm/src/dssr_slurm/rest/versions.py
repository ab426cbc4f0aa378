"""slurmrestd's API versions behind one interface: the submit body, the release body and the
job answers of each version.

- v0.0.38 (Slurm 22.05 to 23.11): ``{"script", "job"}``; ``environment`` an object (required,
  not empty); plain numbers; ``job_state`` a string; ``exit_code`` the raw wait status;
  ``exclusive`` a string; the dbv0.0.38 exit code is wrong for every normal exit, so only
  ``state.current`` is read there.
- v0.0.39 (23.02 to 24.05), best effort: v0.0.38's layout with v0.0.40's values; ``job_state``
  a string, ``exit_code`` the wait status wrapped in ``{set, infinite, number}``.
- v0.0.40 (23.11 to 25.x): ``{"job": {"script", ...}}``; ``environment`` a list of ``K=V``;
  numbers as ``{set, infinite, number}``; ``job_state`` a list (base state and flags);
  ``exit_code`` an object with ``return_code``; ``shared`` instead of ``exclusive``; a held
  job is one of priority 0.
- v0.0.41, v0.0.42: v0.0.40 with ``hold`` (true holds, false releases); v0.0.42 dropped
  ``exclusive`` altogether (``shared`` is used from v0.0.40 on).
- v0.0.43 (25.05), v0.0.44 (25.11), v0.0.45 (26.05): v0.0.42's fields for everything DSSR sends
  and reads (checked against 26.05's ``GET /openapi.json`` and its live answers); v0.0.45's
  ping has ``responding`` and ``status`` but no ``pinged``.

Where each version's fields come from: tests/dssr_slurm/recorded/README.md.
"""

import attrs

from dssr_core.remote.jobs import JobRecord, interactive_fields, upstream_name
from dssr_core.remote.states import LONG_NAMES, is_running, state_name
from dssr_slurm.jobspec import JobSpec, rest_device_fields
from dssr_slurm.nodelist import expand_nodelist

#: Newest first: the order in which versions are probed when none is pinned.
PROBE_ORDER = ("v0.0.45", "v0.0.44", "v0.0.43", "v0.0.42", "v0.0.41", "v0.0.40", "v0.0.39", "v0.0.38")
#: Slurm's "release a held job": priority INFINITE (what ``scontrol release`` sends).
INFINITE32 = 0xFFFFFFFF
#: Slurm's state flags in the order ``job_state_string()`` (and so squeue) gives them precedence.
FLAG_STATES = ("COMPLETING", "STAGE_OUT", "CONFIGURING", "RESIZING", "REQUEUED", "REQUEUE_FED",
               "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED", "REVOKED", "RESV_DEL_HOLD", "SIGNALING")
_BASE_STATES = frozenset(LONG_NAMES.values()) - frozenset(FLAG_STATES)


# Values as the versions write them ------------------------------------------------------


def number(value) -> int | None:
    """A plain number, or ``{set, infinite, number}`` (None when not set or infinite)."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite", False):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def no_val(value: int | None) -> dict | None:
    """A number in v0.0.39+'s ``{set, infinite, number}`` form; None stays None."""
    return None if value is None else {"set": True, "infinite": False, "number": int(value)}


def time_limit(spec: JobSpec) -> int | None:
    """The walltime in slurmrestd's whole minutes, rounded up."""
    return None if spec.walltime_s is None else max(1, -(-spec.walltime_s // 60))


def base_state(value) -> str:
    """The state as squeue prints it, from a string or from v0.0.40's list of a base state and flags.

    Like Slurm's ``job_state_string()``: the first flag of :data:`FLAG_STATES` that is present
    wins (``["COMPLETED", "COMPLETING"]`` -> ``COMPLETING``), else the base state.
    """
    if not isinstance(value, list):
        return state_name(str(value or ""))
    names = [state_name(str(item)) for item in value]
    flag = next((name for name in FLAG_STATES if name in names), None)
    return flag or next((name for name in names if name in _BASE_STATES), names[0] if names else "UNKNOWN")


def exit_code(value) -> int | None:
    """The exit code: from a wait status (plain or ``{set, number}``) or from ``{return_code}``."""
    if isinstance(value, dict) and "return_code" in value:
        return number(value["return_code"])
    status = number(value)
    return None if status is None else (status >> 8) & 0xFF


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def comment_text(value) -> str:
    """A job's comment: a string in ``/slurm/`` job records, an object in ``/slurmdb/`` ones
    (``{administrator, job, system}``, where ``job`` is what ``--comment`` set)."""
    if isinstance(value, dict):
        value = value.get("job")
    return _text(value)


def elapsed_seconds(raw: dict, state: str, now: float) -> int:
    """How long a job has run, as squeue computes it (suspended time left out)."""
    start = number(raw.get("start_time")) or 0
    if start <= 0:
        return 0
    suspended_at = number(raw.get("suspend_time")) or 0
    before_suspend = number(raw.get("pre_sus_time")) or 0
    if is_running(state):
        if state == "SUSPENDED":
            return before_suspend
        return int(before_suspend + now - max(start, suspended_at))
    end = number(raw.get("end_time")) or 0
    return max(int(end - start), 0) if end >= start else 0


# The adapters ---------------------------------------------------------------------------


@attrs.frozen
class ApiVersion:
    """One API version: its paths and how its answers read. Subclasses write the requests."""

    name: str = ""

    @property
    def lists_changes(self) -> bool:
        """Whether ``GET /jobs?update_time=<last_update>`` answers no job when none changed (24.11's
        v0.0.40 and v0.0.41 refuse the parameter: "Parsing of ... for timestamp failed")."""
        return False

    @property
    def answers_not_modified(self) -> bool:
        """Whether ``GET /jobs?update_time=<T>`` answers ``304 Not Modified`` when no job changed
        since ``T`` on slurmctld's clock, for a list that carries no ``last_update``: ``T`` is then
        slurmctld's clock read from ``GET /diag`` before the list (22.05's v0.0.38)."""
        return False

    @property
    def ping_path(self) -> str:
        return f"/slurm/{self.name}/ping"

    @property
    def diag_path(self) -> str:
        return f"/slurm/{self.name}/diag"

    @property
    def jobs_path(self) -> str:
        return f"/slurm/{self.name}/jobs"

    @property
    def submit_path(self) -> str:
        return f"/slurm/{self.name}/job/submit"

    def job_path(self, jobid: str) -> str:
        return f"/slurm/{self.name}/job/{jobid}"

    def db_job_path(self, jobid: str) -> str:
        return f"/slurmdb/{self.name}/job/{jobid}"

    def submit_body(self, script: str, spec: JobSpec) -> dict:
        raise NotImplementedError

    def release_body(self) -> dict:
        raise NotImplementedError

    def submitted_id(self, body: dict) -> str | None:
        """The new job's id in a submit answer (also when ``errors`` only say it is held)."""
        jobid = number(body.get("job_id"))
        if jobid is None and isinstance(body.get("result"), dict):
            jobid = number(body["result"].get("job_id"))
        return str(jobid) if jobid else None

    def job_record(self, raw: dict, now: float) -> JobRecord | None:
        """One entry of ``jobs`` from ``/slurm/``; None when it is not one of ours."""
        name = upstream_name(_text(raw.get("name")))
        jobid = number(raw.get("job_id"))
        if name is None or jobid is None:
            return None
        state = base_state(raw.get("job_state"))
        return JobRecord(jobid=str(jobid), name=name, user=_text(raw.get("user_name")), state=state,
                         elapsed_s=elapsed_seconds(raw, state, now),
                         nodes=expand_nodelist(_text(raw.get("nodes"))) if is_running(state) else (),
                         exit_code=exit_code(raw.get("exit_code")),
                         **interactive_fields(comment_text(raw.get("comment"))))

    def db_record(self, raw: dict) -> JobRecord | None:
        """One entry of ``jobs`` from ``/slurmdb/`` (accounting)."""
        name = upstream_name(_text(raw.get("name")))
        jobid = number(raw.get("job_id"))
        if name is None or jobid is None:
            return None
        state = raw.get("state") if isinstance(raw.get("state"), dict) else {}
        time = raw.get("time") if isinstance(raw.get("time"), dict) else {}
        return JobRecord(jobid=str(jobid), name=name, user=_text(raw.get("user")),
                         state=base_state(state.get("current")), elapsed_s=number(time.get("elapsed")) or 0,
                         exit_code=self.db_exit_code(raw),
                         **interactive_fields(comment_text(raw.get("comment"))))

    def db_exit_code(self, raw: dict) -> int | None:
        return exit_code(raw.get("exit_code"))

    def controller_up(self, body: dict) -> bool:
        """Whether a ping answer says a controller answers (``ping``, ``pinged`` or ``responding``)."""
        for ping in body.get("pings") or []:
            if not isinstance(ping, dict):
                continue
            if ping.get("responding") is True or "UP" in (ping.get("ping"), ping.get("pinged")):
                return True
        return False


@attrs.frozen
class V0038(ApiVersion):
    """22.05's openapi/v0.0.38 (also served by 23.02 and 23.11)."""

    name: str = "v0.0.38"

    @property
    def answers_not_modified(self) -> bool:
        return True

    def submit_body(self, script: str, spec: JobSpec) -> dict:
        job = {
            "name": spec.name,
            # The schema says [min, max], but 22.05.8 ignores a two-item list (the job ran on one
            # node); a plain number is parsed and enforced.
            "nodes": spec.nodes,
            "tasks": spec.tasks,
            "current_working_directory": spec.working_directory,
            "standard_output": spec.output,
            "environment": dict(spec.environment),
        }
        optional = {
            "partition": spec.partition,
            "memory_per_node": spec.memory_mb,
            "gres": f"gpu:{spec.gpus_per_node}" if spec.gpus_per_node else None,
            "exclusive": "exclusive" if spec.exclusive else None,
            "time_limit": time_limit(spec),
            "licenses": spec.licenses,
            "hold": True if spec.held else None,
            "comment": spec.comment,
            "dependency": "singleton" if spec.singleton else None,
        }
        job.update({key: value for key, value in optional.items() if value is not None})
        job.update(rest_device_fields(spec.devices))
        return {"script": script, "job": job}

    def release_body(self) -> dict:
        return {"hold": False}

    def db_exit_code(self, raw: dict) -> int | None:
        """dbv0.0.38 reports every normal exit as SUCCESS/0: its exit code is not used."""
        return None


@attrs.frozen
class V0040(ApiVersion):
    """23.11's data_parser/v0.0.40: a held job is one of priority 0, released with priority INFINITE."""

    name: str = "v0.0.40"

    def job_fields(self, spec: JobSpec) -> dict:
        job = {
            "name": spec.name,
            "nodes": str(spec.nodes),
            "tasks": spec.tasks,
            "current_working_directory": spec.working_directory,
            "standard_output": spec.output,
            "environment": [f"{key}={value}" for key, value in spec.environment],
        }
        optional = {
            "partition": spec.partition,
            "memory_per_node": no_val(spec.memory_mb),
            "tres_per_node": f"gres/gpu:{spec.gpus_per_node}" if spec.gpus_per_node else None,
            "shared": ["none"] if spec.exclusive else None,
            "time_limit": no_val(time_limit(spec)),
            "licenses": spec.licenses,
            "comment": spec.comment,
            "dependency": "singleton" if spec.singleton else None,
        }
        job.update({key: value for key, value in optional.items() if value is not None})
        job.update(rest_device_fields(spec.devices))
        if spec.held:
            job.update(self.hold_fields())
        return job

    def submit_body(self, script: str, spec: JobSpec) -> dict:
        return {"job": {"script": script, **self.job_fields(spec)}}

    def hold_fields(self) -> dict:
        return {"priority": 0}

    def release_body(self) -> dict:
        return {"priority": INFINITE32}


@attrs.frozen
class V0039(V0040):
    """23.02's data_parser/v0.0.39 (best effort): v0.0.38's layout with v0.0.40's values."""

    name: str = "v0.0.39"

    def submit_body(self, script: str, spec: JobSpec) -> dict:
        return {"script": script, "job": self.job_fields(spec)}


@attrs.frozen
class V0041(V0040):
    """24.05's data_parser/v0.0.41: ``hold`` holds (true) and releases (false)."""

    name: str = "v0.0.41"

    def hold_fields(self) -> dict:
        return {"hold": True}

    def release_body(self) -> dict:
        return {"hold": False}


@attrs.frozen
class V0042(V0041):
    """24.11's data_parser/v0.0.42: ``exclusive`` is gone (DSSR sends ``shared`` from v0.0.40 on)."""

    name: str = "v0.0.42"

    @property
    def lists_changes(self) -> bool:
        return True


#: 25.05's v0.0.43, 25.11's v0.0.44 and 26.05's v0.0.45: the fields DSSR uses are v0.0.42's
#: (v0.0.45's ping says ``responding``, not ``pinged``: the ping check reads either).
SAME_AS_V0042 = ("v0.0.43", "v0.0.44", "v0.0.45")

ADAPTERS = {version.name: version for version in (V0038(), V0039(), V0040(), V0041(), V0042(),
                                                  *(V0042(name=name) for name in SAME_AS_V0042))}


def adapter(name: str) -> ApiVersion:
    """The adapter of a version name such as ``v0.0.40``; KeyError for one DSSR does not know."""
    return ADAPTERS[name]
