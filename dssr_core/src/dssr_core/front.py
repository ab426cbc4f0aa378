"""The front listener: the API's port, routing each request to an interactive job or to the API.

Users open interactive jobs at URLs under ``JARVICE_JOBS_DOMAIN`` (:mod:`dssr_core.joburls`),
which the chart's one Ingress sends to the API's port. The front listener takes that port,
frames every request with h11 (one HTTP/1.1 connection carries requests for several jobs and
the API in turn: browsers keep connections alive across one origin), and relays it:

- to a job: the connector says where the job runs now (``interactive_endpoint``) and opens a
  stream there (``connect_interactive``: an SSH ``direct-tcpip`` channel, or a local socket).
  Nothing else is ever dialled: the request picks a job number, never a host or port.
- to the API: the WSGI app, called in the connection's own thread (at most ``threads`` at
  once, as waitress would). A second hop through waitress behind this listener halved the API's
  requests/s (bench/bench_proxy.py), and the poll cycle may lose at most 10%.

A ``101 Switching Protocols`` (websockets) turns the connection into a raw pipe both ways.
A watcher closes the connections of a job that is no longer running. No header is added;
the API's own ``Authorization`` never reaches a job.
"""

import base64
import io
import logging
import select
import socket
import sys
import threading
import time
from urllib.parse import unquote_to_bytes

import h11

from dssr_core.declarations import Setting
from dssr_core.errors import ClusterUnavailable, DssrError, InvalidRequest, NotAvailable
from dssr_core.joburls import JobRoute, JobsDomain

log = logging.getLogger(__name__)

FRONT_LISTENER = Setting(
    "DSSR_FRONT_LISTENER", "`true`: serve job URLs on the API's port (the proxy) even without "
    "`JARVICE_JOBS_DOMAIN`, under `/job<number>`; `false`: never", kind="bool",
    default_text="on when `JARVICE_JOBS_DOMAIN` is set")
CHECK_INTERVAL = Setting(
    "DSSR_PROXY_CHECK_INTERVAL", "seconds between checks that the jobs with open proxied connections "
    "still run; connections of a job that ended are closed", kind="float", default=2.0, minimum=0.1)
MAX_CONNECTIONS = Setting(
    "DSSR_PROXY_MAX_CONNECTIONS", "client connections the front listener holds at once (each is a "
    "thread); more are refused", kind="int", default=1000, minimum=1, maximum=100_000)
IDLE_TIMEOUT = Setting(
    "DSSR_PROXY_IDLE_TIMEOUT", "seconds an HTTP connection may stay silent (a websocket is not timed)",
    kind="float", default=120.0, minimum=1.0)
SETTINGS = (FRONT_LISTENER, CHECK_INTERVAL, MAX_CONNECTIONS, IDLE_TIMEOUT)

#: The prefix of job URLs when the listener is asked for without ``JARVICE_JOBS_DOMAIN``.
DEFAULT_PATH_DOMAIN = "http://localhost/job$"
_CHUNK = 64 * 1024
#: Hop-by-hop headers (RFC 9110 7.6.1) and older proxy ones: never relayed. h11 frames the
#: body itself from content-length / transfer-encoding, which are relayed as they came.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                         b"upgrade", b"proxy-authorization", b"proxy-authenticate"})


def front_domain(settings) -> JobsDomain | None:
    """The jobs domain the front listener routes by, or None when it is off."""
    asked = settings.read(FRONT_LISTENER)
    domain = JobsDomain.from_settings(settings)
    if asked is False:
        return None
    if domain is not None:
        return domain
    return JobsDomain.parse(DEFAULT_PATH_DOMAIN) if asked else None


class FrontListener:
    """Listens on ``(host, port)``: jobs' requests go to ``connector``, the rest to the WSGI ``app``."""

    def __init__(self, listeners: list[socket.socket], app, domain: JobsDomain, connector, *,
                 server_key: str | None = None, check_interval: float = 2.0, threads: int = 16,
                 max_body_bytes: int = 1 << 30, max_header_bytes: int = 64 * 1024,
                 max_connections: int = 1000, idle_timeout: float = 120.0):
        self.app = app
        self.api_slots = threading.BoundedSemaphore(threads)
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.domain = domain
        self.connector = connector
        self.check_interval = check_interval
        self.idle_timeout = idle_timeout
        self._api_authorization = (b"Basic " + base64.b64encode(server_key.encode())) if server_key else None
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._by_job: dict[int, set[_Conversation]] = {}
        self._closed = threading.Event()
        self._listeners = listeners  # bound and listening already (dssr serve binds before it builds)
        self.port = listeners[0].getsockname()[1]
        self.relayed = 0

    def start(self) -> "FrontListener":
        for listener in self._listeners:
            threading.Thread(target=self._accept_loop, args=(listener,), name="dssr-front",
                             daemon=True).start()
        threading.Thread(target=self._watch_loop, name="dssr-front-watch", daemon=True).start()
        log.info("front listener on port %d: job URLs %s, and the API", self.port, self.domain.describe())
        return self

    def close(self) -> None:
        self._closed.set()
        for listener in self._listeners:
            try:
                listener.close()
            except OSError:
                pass

    # Connections ------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.05)  # out of file descriptors: let others finish
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("front listener: %s connections open already; one refused", "all")
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), name="dssr-front-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        conversation = _Conversation(self, client)
        try:
            conversation.run()
        except Exception:  # noqa: BLE001 - one connection's failure never stops the listener
            log.exception("front listener: a connection failed")
        finally:
            conversation.close()
            self._forget(conversation)
            self._slots.release()

    def track(self, conversation: "_Conversation", number: int) -> None:
        with self._lock:
            self._by_job.setdefault(number, set()).add(conversation)

    def _forget(self, conversation: "_Conversation") -> None:
        with self._lock:
            for number in list(self._by_job):
                self._by_job[number].discard(conversation)
                if not self._by_job[number]:
                    del self._by_job[number]

    def _watch_loop(self) -> None:
        while not self._closed.wait(self.check_interval):
            with self._lock:
                watched = {number: set(conversations) for number, conversations in self._by_job.items()}
            for number, conversations in watched.items():
                self._close_if_ended(number, conversations)

    def _close_if_ended(self, number: int, conversations: set["_Conversation"]) -> None:
        try:
            endpoint = self.connector.interactive_endpoint(number)
        except DssrError as error:
            log.info("front listener: cannot tell whether job %d still runs: %s", number, error.message)
            return
        for conversation in conversations:
            if endpoint is None or conversation.jobs.get(number) != endpoint.job.jobid:
                log.info("front listener: job %d no longer runs; closing a connection", number)
                conversation.abort()

    # For conversations ------------------------------------------------------------------

    def job_headers(self, headers) -> list[tuple[bytes, bytes]]:
        """The request's headers as a job gets them: without hop-by-hop ones or the API's key."""
        kept = []
        for name, value in headers:
            if name in _HOP_BY_HOP:
                continue
            if name == b"authorization" and self._api_authorization and value == self._api_authorization:
                continue
            kept.append((name, value))
        return kept


class _Upstream:
    """One connection to a job's service or to the API, with its own h11 client state."""

    def __init__(self, key, stream):
        self.key = key
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.stream.sendall(data)

    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return self.h11.our_state is h11.IDLE and self.h11.their_state is h11.IDLE

    def close(self) -> None:
        try:
            self.stream.close()
        except OSError:
            pass


class _Conversation:
    """One client connection: its requests in turn, each to the API or a job."""

    def __init__(self, front: FrontListener, client: socket.socket):
        self.front = front
        self.client = client
        self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.settimeout(front.idle_timeout)
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=front.max_header_bytes)
        self.upstream: _Upstream | None = None
        self.jobs: dict[int, str] = {}  # job number -> the Slurm/dummy job id this connection reached
        try:
            self.peer = client.getpeername()
        except OSError:
            self.peer = ("", 0)
        self._closed = False

    def abort(self) -> None:
        """End the connection from another thread: its own thread then sees both ends close."""
        self._closed = True
        upstream = self.upstream
        for stream in (self.client, upstream.stream if upstream is not None else None):
            try:
                if stream is not None:
                    stream.shutdown(socket.SHUT_RDWR)
            except (OSError, EOFError):
                pass

    def close(self) -> None:
        self._closed = True
        try:
            self.client.close()
        except OSError:
            pass
        if self.upstream is not None:
            self.upstream.close()

    def run(self) -> None:
        while not self._closed:
            try:
                event = _next_event(self.h11, self.client)
            except h11.RemoteProtocolError as error:
                self._refuse(error.error_status_hint, f"Bad request: {error}.")
                return
            except (OSError, TimeoutError):
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed (or a client that hung up mid-way)
            if not self._relay(event):
                return
            if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is not h11.DONE:
                return
            self.h11.start_next_cycle()

    # One request ------------------------------------------------------------------------

    def _relay(self, request: h11.Request) -> bool:
        """Relay one request and its answer; False when the connection is to close."""
        target = request.target.decode("ascii", "replace")
        hosts = [value for name, value in request.headers if name == b"host"]
        try:
            if len(hosts) > 1:
                raise InvalidRequest("The request has more than one Host header.")
            route = self.front.domain.route(target, hosts[0].decode("ascii", "replace") if hosts else None)
        except InvalidRequest as error:
            self._refuse(400, error.message)
            return False
        if route is None:
            return self._to_api(request)
        return self._to_job(request, route)

    def _to_api(self, request: h11.Request) -> bool:
        if self.upstream is not None:  # a job's connection is not kept across an API request
            self.upstream.close()
            self.upstream = None
        try:
            body = self._whole_body()
        except h11.RemoteProtocolError as error:
            self._refuse(error.error_status_hint, f"Bad request: {error}.")
            return False
        except (OSError, TimeoutError):
            return False
        if body is None:
            self._refuse(413, f"The request body is larger than {self.front.max_body_bytes} bytes.")
            return False
        with self.front.api_slots:
            status, headers, chunks = _call_app(self.front.app, self._environ(request, body))
        try:
            events = [h11.Response(status_code=status, headers=[(n, v) for n, v in headers
                                                                if n.lower() not in _HOP_BY_HOP])]
            if request.method != b"HEAD":
                events += [h11.Data(data=chunk) for chunk in chunks if chunk]
            events.append(h11.EndOfMessage())
            # One write: head and body in one segment (the connection is TCP_NODELAY).
            self.client.sendall(b"".join(self.h11.send(event) or b"" for event in events))
        except (OSError, h11.LocalProtocolError) as error:
            log.info("front listener: the API's answer could not be sent: %s", error)
            return False
        return True

    def _whole_body(self) -> bytes | None:
        """The request's body (the API's are small), or None when it is over the limit."""
        body = bytearray()
        while True:
            event = _next_event(self.h11, self.client)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.front.max_body_bytes:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise OSError("the client hung up")

    def _environ(self, request: h11.Request, body: bytes) -> dict:
        """The WSGI environ (PEP 3333) of an API request."""
        path, _, query = request.target.partition(b"?")
        peer = self.peer
        environ = {
            "REQUEST_METHOD": request.method.decode("ascii"), "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"), "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": "localhost", "SERVER_PORT": str(self.front.port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": str(peer[0]), "REMOTE_PORT": str(peer[1]), "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "wsgi.input_terminated": True,
        }
        for name, value in request.headers:
            if b"_" in name or name == b"content-length":  # as waitress: no header can pose as another
                continue
            key = name.decode("latin-1").upper().replace("-", "_")
            key = key if key == "CONTENT_TYPE" else "HTTP_" + key
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    def _to_job(self, request: h11.Request, route: JobRoute) -> bool:
        connector = self.front.connector
        try:
            endpoint = connector.interactive_endpoint(route.number)
        except DssrError as error:
            return self._answer_error(503, error.message)
        if endpoint is None:
            return self._answer_error(404, f"No interactive job {route.number} is running here: it has "
                                           "not started, has ended, is a batch job, or is not known.")
        key = ("job", route.number, endpoint.job.jobid)
        try:
            upstream = self._upstream(key, lambda: connector.connect_interactive(endpoint))
        except NotAvailable as error:
            return self._answer_error(404, error.message)
        except ClusterUnavailable as error:
            return self._answer_error(503, error.message)
        if upstream is None:
            return self._answer_error(502, f"Interactive job {route.number} runs, but its web service "
                                           f"(port {endpoint.port} on its node) does not answer (yet).")
        self.jobs[route.number] = endpoint.job.jobid
        self.front.track(self, route.number)
        headers = self.front.job_headers(request.headers)
        upgrade = _upgrade_headers(request.headers)
        self.front.relayed += 1
        return self._exchange(upstream, request, route.target.encode("ascii"), headers + upgrade,
                              f"job {route.number}")

    def _upstream(self, key, opener) -> _Upstream | None:
        """The open connection for ``key`` when it can take a request, else a new one (None: refused)."""
        if self.upstream is not None and (self.upstream.key != key or not self.upstream.reusable()):
            self.upstream.close()
            self.upstream = None
        if self.upstream is None:
            try:
                stream = opener()
            except DssrError:
                raise
            except Exception as error:  # noqa: BLE001 - OSError, paramiko's errors: nothing answers
                log.info("front listener: no connection to job %s: %s", key[1], error)
                return None
            stream.settimeout(self.front.idle_timeout)
            self.upstream = _Upstream(key, stream)
        return self.upstream

    def _exchange(self, upstream: _Upstream, request: h11.Request, target: bytes, headers, what: str) -> bool:
        try:
            upstream.send(h11.Request(method=request.method, target=target, headers=headers,
                                      http_version=request.http_version))
            while True:  # the request body, as it comes
                event = _next_event(self.h11, self.client)
                if isinstance(event, h11.Data):
                    upstream.send(event)
                elif isinstance(event, h11.EndOfMessage):
                    upstream.send(h11.EndOfMessage())
                    break
                else:
                    return False
        except h11.RemoteProtocolError as error:
            self._refuse(error.error_status_hint, f"Bad request: {error}.")
            return False
        except (OSError, h11.LocalProtocolError, TimeoutError) as error:
            log.info("front listener: %s stopped while taking the request: %s", what, error)
            return self._answer_error(502, f"The connection to {what} broke while sending the request.")
        return self._relay_response(upstream, what)

    def _relay_response(self, upstream: _Upstream, what: str) -> bool:
        sent_head = False
        try:
            while True:
                event = _next_event(upstream.h11, upstream.stream)
                if isinstance(event, h11.InformationalResponse):
                    if event.status_code == 101:
                        self._send(h11.InformationalResponse(status_code=101, headers=_switch_headers(event),
                                                             reason=event.reason))
                        self._pipe(upstream)
                        return False
                    continue  # 100 Continue and the like: h11 answers those itself
                if isinstance(event, h11.Response):
                    headers = [(n, v) for n, v in event.headers if n not in _HOP_BY_HOP]
                    self._send(h11.Response(status_code=event.status_code, headers=headers,
                                            reason=event.reason))
                    sent_head = True
                elif isinstance(event, h11.Data):
                    self._send(h11.Data(data=event.data))
                elif isinstance(event, h11.EndOfMessage):
                    self._send(h11.EndOfMessage())
                    return True
                else:  # the service hung up before its answer was whole
                    raise OSError("closed before the answer ended")
        except (OSError, h11.ProtocolError, TimeoutError) as error:
            if self._closed:
                return False
            log.info("front listener: %s: the answer broke: %s", what, error)
            if not sent_head:
                return self._answer_error(502, f"{what.capitalize()} did not answer properly.")
            return False

    def _pipe(self, upstream: _Upstream) -> None:
        """After a 101: bytes both ways, raw, until either side closes (or the job ends)."""
        for data, sink in ((self.h11.trailing_data[0], upstream.stream),
                           (upstream.h11.trailing_data[0], self.client)):
            if data:
                sink.sendall(data)
        self.client.settimeout(None)
        upstream.stream.settimeout(None)
        ends = (self.client, upstream.stream)
        while not self._closed:
            try:
                readable, _, _ = select.select(ends, [], [], 1.0)
            except ValueError:  # a stream closed under us
                return
            for source in readable:
                data = source.recv(_CHUNK)
                if not data:
                    return
                (upstream.stream if source is self.client else self.client).sendall(data)

    # Answers of our own -----------------------------------------------------------------

    def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.client.sendall(data)

    def _answer_error(self, status: int, sentence: str) -> bool:
        """Answer ``status`` with a sentence; True when the connection can carry on."""
        if self.h11.our_state is not h11.SEND_RESPONSE:
            return False
        self._drain_request()
        try:
            self._send_text(status, sentence, [])
        except (OSError, h11.LocalProtocolError):
            return False
        return self.h11.their_state is h11.DONE

    def _drain_request(self) -> None:
        """Read what is left of the request's body, so that the next request can follow."""
        try:
            while self.h11.their_state is h11.SEND_BODY:
                if not isinstance(_next_event(self.h11, self.client), h11.Data | h11.EndOfMessage):
                    return
        except (OSError, h11.ProtocolError, TimeoutError):
            return

    def _refuse(self, status: int, sentence: str) -> None:
        """Answer a request we will not relay, then close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            self._send_text(status, sentence, [(b"connection", b"close")])
        except (OSError, h11.LocalProtocolError):
            pass

    def _send_text(self, status: int, sentence: str, extra_headers) -> None:
        body = (sentence + "\n").encode()
        self._send(h11.Response(status_code=status, headers=[
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            *extra_headers]))
        self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())


def _next_event(connection: h11.Connection, stream):
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(stream.recv(_CHUNK))


def _upgrade_headers(headers) -> list[tuple[bytes, bytes]]:
    """``Connection: Upgrade`` and the ``Upgrade`` header of a websocket request, else nothing."""
    upgrade = [(name, value) for name, value in headers if name == b"upgrade"]
    asks = any(name == b"connection" and b"upgrade" in value.lower() for name, value in headers)
    return [(b"connection", b"Upgrade"), *upgrade] if upgrade and asks else []


def _switch_headers(response: h11.InformationalResponse) -> list[tuple[bytes, bytes]]:
    kept = [(n, v) for n, v in response.headers if n not in _HOP_BY_HOP]
    upgrade = [(n, v) for n, v in response.headers if n == b"upgrade"]
    return kept + [(b"connection", b"Upgrade"), *upgrade]


def _call_app(app, environ: dict) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
    """Call a WSGI app: its status, headers and body; a 500 when it fails."""
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, headers
        return answer.setdefault("written", []).append

    try:
        result = app(environ, start_response)
        try:
            chunks = [*answer.get("written", []), *result]
        finally:
            if hasattr(result, "close"):
                result.close()
        headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                   for name, value in answer["headers"]]
        return int(answer["status"].split(" ", 1)[0]), headers, chunks
    except Exception:  # noqa: BLE001 - one request's failure is its own 500
        log.exception("the API failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
        body = b"The API failed on this request; DSSR's log says why.\n"
        return 500, [(b"content-type", b"text/plain; charset=utf-8"),
                     (b"content-length", str(len(body)).encode())], [body]


def serve_behind_front(app, settings, connector, domain: JobsDomain, listeners: list[socket.socket]) -> None:
    """Serve ``app`` and the job URLs on ``listeners`` (the API's port), until SIGTERM or Ctrl-C.

    The bounds waitress would have had apply: its threads, header and body limits.
    """
    from dssr_core.serving import waitress_options

    options = waitress_options(settings)
    front = FrontListener(listeners, app, domain, connector,
                          server_key=settings.server_key, check_interval=settings.read(CHECK_INTERVAL),
                          threads=options["threads"], max_body_bytes=options["max_request_body_size"],
                          max_header_bytes=options["max_request_header_size"],
                          max_connections=settings.read(MAX_CONNECTIONS),
                          idle_timeout=settings.read(IDLE_TIMEOUT)).start()
    try:
        while True:
            time.sleep(3600)
    finally:
        front.close()
