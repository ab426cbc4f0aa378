"""The Falcon app of the JARVICE legacy downstream API.

``create_app`` has no side effects: it wires resources to a connector and an executor (and
the executor's registered name, the key of upstream's ``hpc_script``).
Each resource reads ``args`` (the one form field upstream sends), checks it, calls the
connector and turns its typed answer into the contract's JSON.
"""

import base64
import hmac
import importlib.resources
import json
import logging
import posixpath
import time

import falcon

from dssr_core import __version__, metrics, requestids
from dssr_core.answers import FAILED
from dssr_core.bearer import BearerCheck
from dssr_core.errors import (
    ClusterUnavailable,
    ConnectorError,
    DssrError,
    Forbidden,
    InvalidRequest,
    JobConflict,
    JobNotFound,
    NotAvailable,
    SchedulerRejected,
    Unauthorized,
)
from dssr_core.facts import decode_script
from dssr_core.forms import BoundedFormHandler, body_too_large, parse_args_json
from dssr_core.models import ExitStatus, JobRef, ScriptRequest, Submission, check_job_id, check_job_name
from dssr_core.numbers import INT64_MAX, whole_number

log = logging.getLogger(__name__)
access_log = logging.getLogger("dssr_core.access")

STATUS_BY_ERROR = {
    InvalidRequest: falcon.HTTP_400,
    Unauthorized: falcon.HTTP_401,
    Forbidden: falcon.HTTP_403,
    NotAvailable: falcon.HTTP_404,
    JobNotFound: falcon.HTTP_404,
    JobConflict: falcon.HTTP_409,
    SchedulerRejected: falcon.HTTP_422,
    ClusterUnavailable: falcon.HTTP_503,
    ConnectorError: falcon.HTTP_500,
}
MAX_NODES = 100_000


def create_app(settings, connector, executor, *, executor_name: str, report=None) -> falcon.App:
    """The WSGI app for ``connector`` and ``executor`` under ``settings``.

    ``executor_name`` is the name the executor was selected by: the key of ``hpc_script``
    whose script it renders. ``report``, when given, answers GET ``/check`` (what ``dssr check``
    asks a running server): a callable returning the init report's lines and whether the
    cluster answered.
    """
    middleware = [RequestContext()]
    if settings.server_key:
        middleware.append(BasicAuth(settings.server_key))
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.media_handlers[falcon.MEDIA_URLENCODED] = BoundedFormHandler(settings.max_body_bytes)
    app.add_error_handler(Exception, _unexpected_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(DssrError, _domain_error)

    reader = ArgsReader(settings.max_body_bytes)
    app.add_route("/live", Live())
    app.add_route("/ready", Ready())
    app.add_route("/nodes", Nodes())
    app.add_route("/gc", GarbageCollect(connector))
    bearers = BearerCheck.from_settings(settings)
    app.add_route("/submit", Submit(reader, connector, executor, executor_name, bearers))
    app.add_route("/running", Listing(connector.running, "running"))
    app.add_route("/queued", Listing(connector.queued, "queued"))
    app.add_route("/ended", Listing(connector.ended, "ended"))
    app.add_route("/runstatus", RunStatusResource(reader, connector))
    app.add_route("/exitstatus", ExitStatusResource(reader, connector))
    app.add_route("/terminate", Terminate(reader, connector))
    app.add_route("/release", Release(reader, connector))
    app.add_route("/events", Events(reader, connector))
    app.add_route("/online", Online(reader, connector))
    app.add_route("/request/pvcls", DataListing(reader, connector))
    job_request = JobRequest(reader, connector)
    app.add_route("/request/{name}/{number}/{jobid}/{method}", job_request)
    app.add_route("/request/{name}/{number}/{jobid}", job_request)
    if report is not None:
        app.add_route("/check", CheckReport(settings, report))
    app.add_route("/openapi.json", OpenApiDocument())
    app.add_route("/metrics", Metrics())
    return app


# Reading upstream's form ---------------------------------------------------------------


class ArgsReader:
    """Reads the ``args`` form field as a JSON object, within the bounds of :mod:`forms`."""

    def __init__(self, max_body_bytes: int):
        self.max_body_bytes = max_body_bytes

    def __call__(self, req: falcon.Request) -> dict:
        length = req.content_length
        if length is not None and length > self.max_body_bytes:
            raise body_too_large(length, self.max_body_bytes)
        if not (req.content_type or "").startswith("application/x-www-form-urlencoded"):
            raise InvalidRequest(
                "Send the body as application/x-www-form-urlencoded with one field, args."
            )
        try:
            form = req.get_media()
        except falcon.MediaNotFoundError:
            form = {}
        except falcon.MediaMalformedError:
            raise InvalidRequest("The body is not a valid url-encoded form.") from None
        raw = form.get("args") if isinstance(form, dict) else None
        if raw is None:
            raise InvalidRequest("The form field args is missing.")
        if not isinstance(raw, str):
            raise InvalidRequest("The form field args must appear once.")
        return parse_args_json(raw)


def _integer(args: dict, field: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """A whole number, as JSON or as a string of ASCII digits, within bounds."""
    value = args.get(field)
    if isinstance(value, str):
        value = whole_number(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidRequest(f"args.{field} must be a whole number from {minimum} to {maximum}.")
    return value


def job_ref(args: dict) -> JobRef:
    """The ``name``, ``number``, ``jobid`` triple, each checked."""
    return JobRef(
        name=check_job_name(args.get("name"), "args.name"),
        number=_integer(args, "number"),
        jobid=check_job_id(args.get("jobid"), "args.jobid"),
    )


# Resources ----------------------------------------------------------------------------


class Live:
    def on_get(self, req, resp):
        resp.media = {"status": "OK"}


class Ready:
    """The readiness probe: the app exists once the plugins are loaded and the backends built.

    It does not ask the cluster: an outage shows as 503 on the job endpoints and on /gc, not by
    taking every replica out of the Service.
    """

    def on_get(self, req, resp):
        resp.media = {"status": "OK", "version": __version__}


class OpenApiDocument:
    """The API's OpenAPI 3 document (``dssr_core/openapi.json``); behind the server key like
    every endpoint but the probes, as the contract wants."""

    def __init__(self):
        self._body = openapi_document_bytes()

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._body


def openapi_document_bytes() -> bytes:
    return importlib.resources.files("dssr_core").joinpath("openapi.json").read_bytes()


class Metrics:
    """Every metric in Prometheus's text format (:mod:`dssr_core.metrics`); behind the server key
    here, open on DSSR_METRICS_PORT."""

    def on_get(self, req, resp):
        resp.content_type = metrics.CONTENT_TYPE
        resp.data = metrics.exposition()


class Nodes:
    def on_get(self, req, resp):
        resp.media = True


class GarbageCollect:
    def __init__(self, connector):
        self.connector = connector

    def on_get(self, req, resp):
        try:
            self.connector.gc()
        except DssrError as error:
            log.warning("gc: the cluster is not reachable: %s", error.message)
            resp.status = falcon.HTTP_500
            resp.media = {"status": "BAD"}
            return
        resp.media = {"status": "OK"}


class CheckReport:
    """DSSR's own ``/check``: the init report with a live test of the cluster, made now."""

    def __init__(self, settings, report):
        self.settings = settings
        self.report = report

    def on_get(self, req, resp):
        lines, ok = self.report()
        resp.media = {"connector": self.settings.connector, "executor": self.settings.executor,
                      "ok": ok, "report": lines}


class Submit:
    def __init__(self, read_args, connector, executor, executor_name: str, bearers: BearerCheck):
        self.read_args = read_args
        self.connector = connector
        self.executor = executor
        self.executor_name = executor_name
        self.bearers = bearers

    def on_post(self, req, resp):
        try:
            existing = self._submit(req, resp)
        except (DssrError, falcon.HTTPError) as error:
            refused = (isinstance(error, falcon.HTTPError)
                       or falcon.http_status_to_code(_status_of(error)) < 500)
            metrics.SUBMITS.labels("refused" if refused else "failed").inc()
            raise
        except Exception:
            metrics.SUBMITS.labels("failed").inc()
            raise
        metrics.SUBMITS.labels("retried" if existing else "new").inc()

    def _submit(self, req, resp) -> bool:
        """Submit; whether a live job of that name answered instead of a new one."""
        args = self.read_args(req)
        name = check_job_name(args.get("name"), "args.name")
        number = _integer(args, "number")
        nodes = _integer(args, "nodes", minimum=1, maximum=MAX_NODES)
        held = args.get("hold", False)
        if not isinstance(held, bool):
            raise InvalidRequest("args.hold must be true or false.")
        bearer = self.bearers.read(args.get("bearer"))  # checked before the cluster hears of the job
        template = decode_script(self._script_for_executor(args), f"args.hpc_script.{self.executor_name}")
        rendered = self.executor.render(ScriptRequest(name, number, nodes, template))
        submission = Submission(
            name=name,
            number=number,
            script=rendered.script,
            facts=rendered.facts,
            held=held,
            success_marker=rendered.success_marker,
            service_port=rendered.service_port,
            user_email=bearer.email if bearer else None,
            bearer=bearer.token if bearer else None,
            bearer_claims=bearer.claims if bearer else {},
        )
        result = self.connector.submit(submission)
        log.info("submitted %s/%s as job %s (%d node(s), held=%s)", name, number, result.jobid, nodes, held)
        resp.media = [result.jobid, self.executor.redact(result.script)]
        return result.existing

    def _script_for_executor(self, args: dict) -> object:
        scripts = args.get("hpc_script")
        if not isinstance(scripts, dict):
            raise InvalidRequest("args.hpc_script must be an object of executor name -> base64 script.")
        if self.executor_name not in scripts:
            offered = ", ".join(sorted(map(str, scripts))) or "none"
            raise InvalidRequest(
                f"args.hpc_script has no script for the executor {self.executor_name!r} "
                f"that this server runs (it has: {offered})."
            )
        return scripts[self.executor_name]


class Listing:
    def __init__(self, list_jobs, state: str):
        self.list_jobs = list_jobs
        self.jobs = metrics.JOBS.labels(state)

    def on_get(self, req, resp):
        jobs = self.list_jobs()
        self.jobs.set(len(jobs))
        resp.media = [[job.name, job.jobid] for job in jobs]


class _ConnectorResource:
    """A resource that reads upstream's ``args`` and asks the connector."""

    def __init__(self, read_args, connector):
        self.read_args = read_args
        self.connector = connector


class _JobResource(_ConnectorResource):
    """POST ``name``, ``number``, ``jobid``; answers what :meth:`answer` returns."""

    def on_post(self, req, resp):
        job = job_ref(self.read_args(req))
        resp.media = self.answer(job)


class RunStatusResource(_JobResource):
    def answer(self, job):
        try:
            return self.connector.runstatus(job).as_contract(job)
        except JobNotFound:
            return [None, None, None, None]


class ExitStatusResource(_JobResource):
    def answer(self, job):
        try:
            status = self.connector.exitstatus(job)
        except JobNotFound:
            status = ExitStatus.unknown()
        log.info("exit status of %s: %s (rc %s)", job, status.state, status.rc)
        return status.as_contract()


class Terminate(_JobResource):
    def answer(self, job):
        try:
            self.connector.terminate(job)
        except JobNotFound:
            log.info("terminate: job %s is not known; nothing to do", job)
        return True


class Release(_JobResource):
    def answer(self, job):
        self.connector.release(job)
        return True


class Events(_JobResource):
    def answer(self, job):
        return self.connector.events(job)


class Online(_ConnectorResource):
    def on_post(self, req, resp):
        args = self.read_args(req)
        host, status = args.get("host"), args.get("status")
        if not isinstance(host, str) or not host:
            raise InvalidRequest("args.host must be a host name.")
        self.connector.online(host, str(status))
        resp.media = True


def _query(args: dict) -> dict[str, list[str]]:
    query = args.get("qs", {})
    if not isinstance(query, dict):
        raise InvalidRequest("args.qs must be an object of key -> list of values.")
    cleaned = {}
    for key, values in query.items():
        values = values if isinstance(values, list) else [values]
        cleaned[str(key)] = [str(v) for v in values]
    return cleaned


class JobRequest(_ConnectorResource):
    """``/request/<name>/<number>/<jobid>[/<method>]``; no method answers 200, empty."""

    def on_post(self, req, resp, name, number, jobid, method=""):
        args = self.read_args(req) if req.content_length else {}
        job = job_ref({"name": name, "number": number, "jobid": jobid})
        answer = self.connector.request(job, method, _query(args))
        resp.status = falcon.code_to_http_status(answer.status)
        if isinstance(answer.body, dict):
            resp.media = answer.body
        else:
            resp.content_type = _with_charset(answer.content_type)
            resp.data = answer.body if isinstance(answer.body, bytes) else _utf8(answer.body)


class DataListing(_ConnectorResource):
    def on_post(self, req, resp):
        query = _query(self.read_args(req))
        path = data_path((query.get("path") or ["/"])[-1])
        details = (query.get("details") or ["false"])[-1].lower() == "true"
        entries = self.connector.pvcls(path, details)
        resp.content_type = falcon.MEDIA_TEXT
        resp.data = _utf8("".join(entry.as_line(details) + "\n" for entry in entries))


def _with_charset(content_type: str) -> str:
    """A text type says that its bytes are UTF-8 (as :func:`_utf8` makes them), so that clients
    do not guess Latin-1 (``café`` shown as ``cafÃ©``)."""
    if content_type.startswith("text/") and "charset=" not in content_type:
        return content_type + "; charset=utf-8"
    return content_type


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8; a file name that is not UTF-8 (a lone surrogate here) shows as '?'."""
    return text.encode("utf-8", errors="replace")


def data_path(path: str) -> str:
    """A ``pvcls`` path made relative to the data root; ``..`` and odd characters refused."""
    if "\0" in path or "\n" in path:
        raise InvalidRequest("qs.path has a control character.")
    path = path.removeprefix("/data") if path == "/data" or path.startswith("/data/") else path
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Forbidden("qs.path may not contain '..': listings stay inside the data root.")
    return posixpath.join(*parts) if parts else ""


# Middleware and error handlers ---------------------------------------------------------


#: Route labels where the template holds more than the route: a job's name, number and id
#: are never a label.
ROUTE_LABELS = {"/request/{name}/{number}/{jobid}/{method}": "/request/{method}",
                "/request/{name}/{number}/{jobid}": "/request/{method}"}
UNMATCHED_ROUTE = "unmatched"


class RequestContext:
    """Per request: its id (:mod:`dssr_core.requestids`), held for the log lines written while
    it is served and returned as ``X-Request-Id``; then one access line (method, path, status,
    milliseconds; no body, no header) and the HTTP metrics, labelled by route template."""

    def process_request(self, req, resp):
        context = req.context
        context.started = time.perf_counter()
        request_id = (req.env.get(requestids.ENVIRON_KEY)  # the front listener's
                      or requestids.accept(req.get_header(requestids.HEADER)))
        context.request_id = request_id
        context.id_token = requestids.current.set(request_id)

    def process_response(self, req, resp, resource, req_succeeded):
        context = req.context
        started = getattr(context, "started", None)
        elapsed = time.perf_counter() - started if started else 0.0
        resp.set_header(requestids.HEADER, context.request_id)
        code = resp.status_code
        access_log.info("%s %s %s %.1fms", req.method, printable(req.path), code, elapsed * 1000)
        template = req.uri_template
        route = ROUTE_LABELS.get(template, template) if template else UNMATCHED_ROUTE
        metrics.http_request(route, metrics.method_label(req.method), code, elapsed)
        requestids.current.reset(context.id_token)


class BasicAuth:
    """Refuses every caller without the ``JARVICE_SCHED_SERVER_KEY`` credentials but on the
    probes (/live, /ready), which the chart's kubelet calls without credentials.

    The scheme name is matched in any case (RFC 7235); the credentials in constant time.
    """

    OPEN_PATHS = frozenset({"/live", "/ready"})

    def __init__(self, server_key: str):
        self._expected = base64.b64encode(server_key.encode()).decode().encode()

    def process_request(self, req, resp):
        if req.path in self.OPEN_PATHS:
            return
        scheme, _, credentials = (req.get_header("Authorization") or "").strip().partition(" ")
        given = credentials.strip().encode("utf-8", errors="replace")
        matches = hmac.compare_digest(given, self._expected)
        if not (matches and scheme.lower() == "basic"):
            raise falcon.HTTPUnauthorized(
                title="401 Unauthorized",
                description="Send HTTP Basic credentials that match JARVICE_SCHED_SERVER_KEY.",
                challenges=['Basic realm="dssr"'],
            )


def _status_of(error: DssrError) -> str:
    return next((code for cls, code in STATUS_BY_ERROR.items() if isinstance(error, cls)), falcon.HTTP_500)


def _domain_error(req, resp, error, params):
    status = _status_of(error)
    description = error.message
    if status == falcon.HTTP_500:
        log.error("%s %s failed: %s%s", req.method, printable(req.path), error.message,
                  f" ({error.detail})" if error.detail else "")
        description = FAILED
    elif error.detail:
        log.warning("%s %s: %s (%s)", req.method, printable(req.path), error.message, error.detail)
    _answer(req, resp, status, description)


def _http_error(req, resp, error, params):
    description = error.description or _routing_description(req, error)
    _answer(req, resp, error.status, description, error.headers)


def _unexpected_error(req, resp, error, params):
    log.exception("%s %s failed unexpectedly", req.method, printable(req.path))
    _answer(req, resp, falcon.HTTP_500, FAILED)


def _routing_description(req, error: falcon.HTTPError) -> str:
    if error.status_code == 404:
        return "No endpoint has this path; GET /openapi.json lists them."
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        return f"This endpoint does not take {req.method}; it takes {allowed or 'other methods'}."
    return f"The request was refused ({error.status})."


def _answer(req, resp, status, description: str, headers=None) -> None:
    """The contract's error JSON, with the request's id. Serialised here, ASCII only, so that it
    cannot fail: a body the resource set (text with a lone surrogate...) is dropped."""
    resp.status = status
    resp.text = None
    resp.content_type = falcon.MEDIA_JSON
    status_line = falcon.code_to_http_status(falcon.http_status_to_code(status))
    request_id = getattr(req.context, "request_id", None) or requestids.current.get() or requestids.new()
    resp.data = json.dumps({"title": status_line, "description": description,
                            "request_id": request_id}).encode("ascii")
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


def printable(text: str) -> str:
    """``text`` for a log line: control characters escaped, so that one line stays one."""
    return text if text.isprintable() else repr(text)[1:-1]
