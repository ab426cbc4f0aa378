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

The bounds are waitress's settings (:class:`Bounds`): past ``DSSR_CONNECTION_LIMIT`` open
connections nothing more is accepted (the rest wait in the listen backlog); a connection that
sends nothing for ``DSSR_CHANNEL_TIMEOUT`` is closed, and a request's head (an API request's
body too) must arrive whole within that time of its first byte, so that a client dripping a
byte now and then holds no connection for long. Every answer of the listener's own is the
contract's JSON error (:mod:`dssr_core.answers`).

Every answer carries ``X-Request-Id`` (:mod:`dssr_core.requestids`): the app sets it on its own,
the listener on its errors and on a job's answers. The listener counts what the app does not
see (``route="job-proxy"`` and, for requests refused before they were routed, ``"unrouted"``),
the open connections to jobs and the bytes relayed (:mod:`dssr_core.metrics`).
"""

import base64
import io
import logging
import queue
import select
import socket
import struct
import sys
import threading
import time
from urllib.parse import unquote_to_bytes

import attrs
import h11

from dssr_core import answers, metrics, requestids
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
SETTINGS = (FRONT_LISTENER, CHECK_INTERVAL)

#: The prefix of job URLs when the listener is asked for without ``JARVICE_JOBS_DOMAIN``.
DEFAULT_PATH_DOMAIN = "http://localhost/job$"
#: Seconds a connection thread waits for another connection before it ends.
THREAD_LINGER_S = 60.0
#: Seconds, at most, that what a refused client still sends is read and dropped before the
#: close: closing on unread bytes resets the connection, and the client may lose the answer.
LINGER_S = 2.0
#: Bytes of a request's body read and dropped, at most, so that the connection can carry on
#: after an answer of ours (a 404 for a job); past that it is closed.
DRAIN_LIMIT = 1 << 20
_CHUNK = 64 * 1024
#: Answers of a job with a Content-Length of at least this many bytes are relayed past h11's
#: parsing, in reads of up to ``_LONG_BODY_CHUNK``.
_LONG_BODY = 64 * 1024
_LONG_BODY_CHUNK = 256 * 1024
#: Hop-by-hop headers (RFC 9110 7.6.1) and older proxy ones: never relayed. h11 frames the
#: body itself from content-length / transfer-encoding, which are relayed as they came.
#: ``Expect`` is answered here (100 Continue), not by the job.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                         b"upgrade", b"proxy-authorization", b"proxy-authenticate"})
_NOT_TO_JOBS = _HOP_BY_HOP | {b"expect"}
#: The app's headers that the listener writes itself, from the answer it sends.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@attrs.frozen
class Bounds:
    """What one connection and all of them may hold: waitress's settings, read once."""

    threads: int = 16
    connection_limit: int = 1000
    channel_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 8 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings) -> "Bounds":
        return cls(threads=settings.threads, connection_limit=settings.connection_limit,
                   channel_timeout=settings.channel_timeout, max_header_bytes=settings.max_header_bytes,
                   max_body_bytes=settings.max_body_bytes)


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
    """Listens on ``listeners``: jobs' requests go to ``connector``, the rest to the WSGI ``app``."""

    def __init__(self, listeners: list[socket.socket], app, domain: JobsDomain, connector, *,
                 server_key: str | None = None, check_interval: float = 2.0, bounds: Bounds = Bounds()):
        self.app = app
        self.bounds = bounds
        self.api_slots = threading.BoundedSemaphore(bounds.threads)
        self.domain = domain
        self.connector = connector
        self.check_interval = check_interval
        self._api_authorization = (b"Basic " + base64.b64encode(server_key.encode())) if server_key else None
        self._listeners = listeners  # bound and listening already (dssr serve binds before it builds)
        self.port = listeners[0].getsockname()[1]
        self._slots = threading.BoundedSemaphore(bounds.connection_limit)
        self._threads = _ThreadPool(self._serve, f"dssr-front-{self.port}")
        self._lock = threading.Lock()
        self._by_job: dict[int, set[_Conversation]] = {}
        self._closed = threading.Event()
        self.relayed = 0

    def start(self) -> "FrontListener":
        for listener in self._listeners:
            threading.Thread(target=self._accept_loop, args=(listener,), name="dssr-front-accept",
                             daemon=True).start()
        threading.Thread(target=self._watch_loop, name="dssr-front-watch", daemon=True).start()
        log.info("front listener on port %d: job URLs %s, and the API", self.port, self.domain.describe())
        return self

    def close(self) -> None:
        self._closed.set()
        for listener in self._listeners:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes an accept() waiting in another thread
            except OSError:
                pass
            listener.close()

    # Connections ------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            # At the limit nothing is accepted: new connections wait in the listen backlog.
            if not self._slots.acquire(timeout=1.0):
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                self._slots.release()
                if self._closed.is_set():
                    return
                time.sleep(0.05)  # out of file descriptors: let others finish
                continue
            try:
                self._threads.run(client)
            except RuntimeError as error:  # no thread could start; a running one takes it later
                log.warning("front listener: no new thread for a connection: %s", error)
                time.sleep(0.05)

    def _serve(self, client: socket.socket) -> None:
        try:
            conversation = _Conversation(self, client)
            try:
                conversation.run()
            except Exception:  # noqa: BLE001 - one connection's failure never stops the listener
                log.exception("front listener: a connection failed")
            finally:
                conversation.close()
                self._forget(conversation)
        except OSError:  # the client left before its connection was set up
            client.close()
        finally:
            self._slots.release()

    def track(self, conversation: "_Conversation", number: int) -> None:
        with self._lock:
            self._by_job.setdefault(number, set()).add(conversation)

    def _forget(self, conversation: "_Conversation") -> None:
        if not conversation.jobs:
            return
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
            if name in _NOT_TO_JOBS:
                continue
            if name == b"authorization" and self._api_authorization and value == self._api_authorization:
                continue
            kept.append((name, value))
        return kept


class _ThreadPool:
    """Threads that each serve one connection at a time: a free one takes the next connection,
    a new one starts when none is free, and one left without work for THREAD_LINGER_S ends.
    The connection limit bounds how many there are. (A C queue hands the connections over:
    Python's Condition cost a tenth of a new connection's time.)"""

    def __init__(self, work, name: str):
        self._work = work
        self._name = name
        self._lock = threading.Lock()
        self._handed: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0  # at most the threads waiting for the queue: each handed item finds one

    def run(self, item) -> None:
        with self._lock:
            free = self._idle > 0
            if free:
                self._idle -= 1
        if free:
            self._handed.put(item)
        else:
            threading.Thread(target=self._loop, args=(item,), name=self._name, daemon=True).start()

    def _loop(self, item) -> None:
        while True:
            self._work(item)
            with self._lock:
                self._idle += 1
            while True:
                try:
                    item = self._handed.get(timeout=THREAD_LINGER_S)
                    break
                except queue.Empty:
                    with self._lock:
                        if self._idle > 0:  # none was handed to this thread: it may end
                            self._idle -= 1
                            return


class _Upstream:
    """One connection to a job's service, with its own h11 client state."""

    def __init__(self, key, stream):
        self.key = key
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self._open = True
        metrics.PROXY_CONNECTIONS.inc()

    def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.stream.sendall(data)
            if isinstance(event, h11.Data):
                _TO_JOB.inc(len(event.data))

    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return self.h11.our_state is h11.IDLE and self.h11.their_state is h11.IDLE

    def close(self) -> None:
        if self._open:
            self._open = False
            metrics.PROXY_CONNECTIONS.dec()
        try:
            self.stream.close()
        except OSError:
            pass


_TO_JOB = metrics.PROXY_BYTES.labels("to_job")
_FROM_JOB = metrics.PROXY_BYTES.labels("from_job")


class _TooSlow(Exception):
    """The request did not arrive whole within the channel timeout of its first byte."""


class _Conversation:
    """One client connection: its requests in turn, each to the API or a job."""

    def __init__(self, front: FrontListener, client: socket.socket):
        self.front = front
        self.bounds = front.bounds
        self.client = client
        self.client.setblocking(True)  # timed by _set_timeout
        self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._timeout: float | None = None
        self._set_timeout(self.bounds.channel_timeout)
        self.h11 = self._new_h11()
        self.upstream: _Upstream | None = None
        self.jobs: dict[int, str] = {}  # job number -> the Slurm/dummy job id this connection reached
        peer = client.getpeername()
        self.peer = f"{peer[0]}:{peer[1]}"
        self._environ_base = {
            "SCRIPT_NAME": "", "SERVER_NAME": "localhost", "SERVER_PORT": str(front.port),
            "REMOTE_ADDR": str(peer[0]), "REMOTE_PORT": str(peer[1]),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        self._deadline = 0.0  # when the request being read must have arrived whole
        self._head_only = False  # the request is a HEAD: answers have no body
        self._closed = False
        self.request_id = ""  # the id of the request being served (requestids)
        self._status = 0  # the status of the answer sent to it, for the metrics

    def _set_timeout(self, seconds: float | None) -> None:
        """Bound each read and each write of the client's socket to ``seconds`` (None: unbounded).

        The kernel's bounds (SO_RCVTIMEO, SO_SNDTIMEO) on a blocking socket, where a timed-out
        call fails with BlockingIOError: Python's own timeout polls before every read and write,
        two system calls for one, and each lets go of the GIL that 16 busy threads share.
        """
        if seconds == self._timeout:
            return
        self._timeout = seconds
        microseconds = round(max(seconds, 0.001) * 1e6) if seconds is not None else 0  # 0: unbounded
        timeval = struct.pack("ll", *divmod(microseconds, 1_000_000))
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.bounds.max_header_bytes)

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
            self.request_id = requestids.new()  # until a request's head names its own
            self._status = 0
            try:
                request = self._next_request()
            except _TooSlow:
                self._refuse(408, f"The request line and headers did not arrive within "
                                  f"{self.bounds.channel_timeout:g} s (DSSR_CHANNEL_TIMEOUT).")
                if self._status:
                    metrics.http_request(metrics.UNROUTED, "other", self._status, 0.0)
                return
            except h11.RemoteProtocolError as error:
                self._refuse_malformed(error)
                if self._status:
                    metrics.http_request(metrics.UNROUTED, "other", self._status, 0.0)
                return
            except OSError:
                return
            if request is None or not self._relay(request):
                return

    # Reading ----------------------------------------------------------------------------

    def _next_request(self) -> h11.Request | None:
        """The next request's head; None when the client hung up, or sent nothing for the
        channel timeout (closed without a word, as waitress does)."""
        self._head_only = False
        event = self.h11.next_event()
        if event is h11.NEED_DATA:
            self._set_timeout(self.bounds.channel_timeout)
            try:
                data = self.client.recv(_CHUNK)
            except BlockingIOError:  # nothing for the channel timeout
                return None
            if answers.is_tls_hello(data):  # it would wait for a handshake: close, with a hint
                log.warning("front listener: %s", answers.tls_hint(self.peer))
                return None
            self.h11.receive_data(data)
            event = self.h11.next_event()
        self._deadline = time.monotonic() + self.bounds.channel_timeout
        while event is h11.NEED_DATA:
            self.h11.receive_data(self._receive_by_deadline())
            event = self.h11.next_event()
        return event if isinstance(event, h11.Request) else None

    def _receive_by_deadline(self) -> bytes:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _TooSlow
        self._set_timeout(left)
        try:
            return self.client.recv(_CHUNK)
        except BlockingIOError:
            raise _TooSlow from None

    def _next_event(self):
        """The request's next event; the socket waits the channel timeout for each read."""
        while (event := self.h11.next_event()) is h11.NEED_DATA:
            self.h11.receive_data(self.client.recv(_CHUNK))
        return event

    def _let_body_come(self) -> None:
        """Answer ``Expect: 100-continue``: the client sends the body once it reads this."""
        if self.h11.they_are_waiting_for_100_continue:
            self.client.sendall(_CONTINUE)

    def _next_cycle(self) -> bool:
        """Ready for the next request, with what the client sent after this one; True."""
        data, closed = self.h11.trailing_data
        self.h11 = self._new_h11()
        if data:
            self.h11.receive_data(data)
        if closed:
            self.h11.receive_data(b"")
        return True

    # One request ------------------------------------------------------------------------

    def _relay(self, request: h11.Request) -> bool:
        """Relay one request and its answer, with its id held for the log; False when the
        connection is to close."""
        sent_id = next((value for name, value in request.headers if name == b"x-request-id"), None)
        self.request_id = requestids.accept(sent_id)
        token = requestids.current.set(self.request_id)
        started = time.perf_counter()
        self._status = 0
        route = metrics.UNROUTED
        try:
            route, carry_on = self._route(request)
            return carry_on
        finally:
            if route is not None and self._status:  # the API's requests are the app's to count
                method = metrics.method_label(request.method.decode("ascii", "replace"))
                metrics.http_request(route, method, self._status, time.perf_counter() - started)
            requestids.current.reset(token)

    def _route(self, request: h11.Request) -> tuple[str | None, bool]:
        """Relay one request; its route label (None: the app's) and whether the connection carries on."""
        self._head_only = request.method == b"HEAD"
        if _head_size(request) > self.bounds.max_header_bytes:  # h11 bounds only a head that comes in parts
            return metrics.UNROUTED, self._refuse(431, answers.head_too_large(self.bounds.max_header_bytes))
        target = request.target.decode("ascii", "replace")
        host = next((value for name, value in request.headers if name == b"host"), None)  # one: h11 checks
        try:
            route = self.front.domain.route(target, host.decode("ascii", "replace") if host else None)
        except InvalidRequest as error:
            return metrics.UNROUTED, self._refuse(400, error.message)
        if route is None:
            carry_on = self._to_api(request)
            return (metrics.UNROUTED if self._status else None), carry_on
        return "job-proxy", self._to_job(request, route)

    def _to_api(self, request: h11.Request) -> bool:
        if self.upstream is not None:  # a job's connection is not kept across an API request
            self.upstream.close()
            self.upstream = None
        limit = self.bounds.max_body_bytes
        declared = _content_length(request.headers)
        if declared is not None and declared > limit:
            return self._refuse(413, answers.body_too_large(declared, limit))
        try:
            self._let_body_come()
            body = self._whole_body(limit)
        except _TooSlow:
            return self._refuse(408, f"The request did not arrive whole within "
                                     f"{self.bounds.channel_timeout:g} s (DSSR_CHANNEL_TIMEOUT).")
        except h11.RemoteProtocolError as error:
            return self._refuse_malformed(error)
        except OSError:
            return False
        if body is None:
            return self._refuse(413, answers.body_too_large(None, limit))
        keep_alive = self.h11.their_state is h11.DONE  # else MUST_CLOSE: HTTP/1.0, Connection: close
        environ = self._environ(request, body)
        environ[requestids.ENVIRON_KEY] = self.request_id
        with self.front.api_slots:
            answer = _call_app(self.front.app, environ, self.request_id, head_only=self._head_only,
                               keep_alive=keep_alive)
        try:
            self._set_timeout(self.bounds.channel_timeout)  # not what the body's deadline left
            self.client.sendall(answer)
        except OSError as error:
            log.info("front listener: the API's answer to %s could not be sent: %s", self.peer, error)
            return False
        return keep_alive and self._next_cycle()

    def _whole_body(self, limit: int) -> bytes | None:
        """The request's body (the API's are small), or None when it is over ``limit``; it must
        arrive by the head's deadline."""
        chunks, size = [], 0
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self._receive_by_deadline())
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
                size += len(event.data)
                if size > limit:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise OSError("the client hung up")

    def _environ(self, request: h11.Request, body: bytes) -> dict:
        """The WSGI environ (PEP 3333) of an API request."""
        path, _, query = request.target.partition(b"?")
        environ = self._environ_base.copy()
        environ["REQUEST_METHOD"] = request.method.decode("ascii")
        environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.http_version.decode("ascii")
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
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
        self._set_timeout(self.bounds.channel_timeout)
        try:
            endpoint = connector.interactive_endpoint(route.number)
        except DssrError as error:
            return self._job_unreachable(route.number, error)
        if endpoint is None:
            return self._answer_error(404, f"No interactive job {route.number} is running here: it has "
                                           "not started, has ended, is a batch job, or is not known.")
        key = ("job", route.number, endpoint.job.jobid)
        try:
            upstream = self._upstream(key, lambda: connector.connect_interactive(endpoint))
        except NotAvailable as error:
            return self._answer_error(404, error.message)
        except DssrError as error:
            return self._job_unreachable(route.number, error)
        if upstream is None:
            return self._answer_error(502, f"Interactive job {route.number} runs, but its web service "
                                           f"(port {endpoint.port} on its node) does not answer (yet).")
        self.jobs[route.number] = endpoint.job.jobid
        self.front.track(self, route.number)
        headers = self.front.job_headers(request.headers)
        upgrade = _upgrade_headers(request.headers)
        self.front.relayed += 1
        try:
            self._let_body_come()
        except OSError:
            return False
        if not self._exchange(upstream, request, route.target.encode("ascii"), headers + upgrade,
                              f"job {route.number}"):
            return False
        if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
            return False
        return self._next_cycle()

    def _job_unreachable(self, number: int, error: DssrError) -> bool:
        """A 503 that names no host: job URLs are open to anyone, the log says what failed. A
        connector that cannot reach jobs at all (``NotAvailable``: slurmrestd without SSH settings)
        says which settings are missing."""
        log.warning("front listener: job %d: %s", number, error.message)
        if isinstance(error, NotAvailable):  # the proxy is not set up: what to set, never a host
            return self._answer_error(503, error.message)
        if not isinstance(error, ClusterUnavailable):
            return self._answer_error(500, answers.FAILED)
        return self._answer_error(503, f"The cluster cannot be asked about job {number} now; "
                                       "try again shortly.")

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
            stream.settimeout(self.bounds.channel_timeout)
            self.upstream = _Upstream(key, stream)
        return self.upstream

    def _exchange(self, upstream: _Upstream, request: h11.Request, target: bytes, headers, what: str) -> bool:
        try:
            upstream.send(h11.Request(method=request.method, target=target, headers=headers,
                                      http_version=request.http_version))
            while True:  # the request body, as it comes
                event = self._next_event()
                if isinstance(event, h11.Data):
                    upstream.send(event)
                elif isinstance(event, h11.EndOfMessage):
                    upstream.send(h11.EndOfMessage())
                    break
                else:
                    return False
        except h11.RemoteProtocolError as error:
            return self._refuse_malformed(error)
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
                        self._status = 101
                        self._send(h11.InformationalResponse(status_code=101, headers=self._with_id(
                            _switch_headers(event)), reason=event.reason))
                        self._pipe(upstream)
                        return False
                    continue  # 100 Continue and the like: the client had ours
                if isinstance(event, h11.Response):
                    headers = [(n, v) for n, v in event.headers if n not in _HOP_BY_HOP]
                    self._status = event.status_code
                    self._send(h11.Response(status_code=event.status_code, headers=self._with_id(headers),
                                            reason=event.reason))
                    sent_head = True
                    length = None if self._head_only else _long_body_length(event)
                    if length is not None:
                        self._relay_long_body(upstream, length, _keeps_alive(event))
                        return True
                elif isinstance(event, h11.Data):
                    _FROM_JOB.inc(len(event.data))
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

    def _relay_long_body(self, upstream: _Upstream, length: int, keeps_alive: bool) -> None:
        """A body of ``length`` bytes (its Content-Length), read from the job's stream and sent
        on as it comes. The upstream's h11 would copy each chunk four times on the way (buffer,
        slice, event, join) for framing that the length alone decides; the client's h11 still
        frames the answer, without a copy (``send_with_data_passthrough``).

        The upstream's h11 stays where the head left it (their side sending a body), so it tells
        ``reusable()`` no, unless the whole body came and the connection may carry another
        request: then a fresh h11 takes the next one."""
        waiting, _ = upstream.h11.trailing_data  # what came with the head
        reusable = keeps_alive and len(waiting) <= length and upstream.h11.our_state is h11.DONE
        left = length
        try:
            if waiting:
                self._send_data(waiting[:length])
                left -= min(len(waiting), length)
            while left:
                data = upstream.stream.recv(min(left, _LONG_BODY_CHUNK))
                if not data:
                    raise OSError("closed before the answer ended")
                self._send_data(data)
                left -= len(data)
        finally:
            _FROM_JOB.inc(length - left)
        if reusable:
            upstream.h11 = h11.Connection(h11.CLIENT)
        self._send(h11.EndOfMessage())

    def _send_data(self, data) -> None:
        for piece in self.h11.send_with_data_passthrough(h11.Data(data=data)):
            self.client.sendall(piece)

    def _pipe(self, upstream: _Upstream) -> None:
        """After a 101: bytes both ways, raw, until either side closes (or the job ends)."""
        for data, sink in ((self.h11.trailing_data[0], upstream.stream),
                           (upstream.h11.trailing_data[0], self.client)):
            if data:
                sink.sendall(data)
        self._set_timeout(None)  # an open websocket is not timed
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
                (_TO_JOB if source is self.client else _FROM_JOB).inc(len(data))
                (upstream.stream if source is self.client else self.client).sendall(data)

    # Answers of our own -----------------------------------------------------------------

    def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.client.sendall(data)

    def _with_id(self, headers: list) -> list:
        """A job's answer's headers with the request's id in place of any the job set."""
        return [*(item for item in headers if item[0] != b"x-request-id"),
                (b"x-request-id", self.request_id.encode("ascii"))]

    def _answer_error(self, status: int, sentence: str) -> bool:
        """Answer ``status`` with a sentence; True when the connection carries on."""
        if self.h11.our_state is not h11.SEND_RESPONSE:
            return False  # part of an answer went out already: only closing can tell the client
        keep_alive = self._drain_request()
        self._status = status
        try:
            self.client.sendall(_error_answer(status, sentence, self.request_id, head_only=self._head_only,
                                              keep_alive=keep_alive))
        except OSError:
            return False
        return keep_alive and self._next_cycle()

    def _drain_request(self) -> bool:
        """Read and drop the rest of the request's body; whether the next request can follow."""
        if self.h11.they_are_waiting_for_100_continue:
            return False  # the body never comes; the client closes or sends its next request
        dropped = 0
        try:
            while self.h11.their_state is h11.SEND_BODY and dropped <= DRAIN_LIMIT:
                event = self._next_event()
                if not isinstance(event, h11.Data | h11.EndOfMessage):
                    return False
                dropped += len(event.data) if isinstance(event, h11.Data) else 0
        except (OSError, h11.ProtocolError):
            return False
        return self.h11.their_state is h11.DONE

    def _refuse_malformed(self, error: h11.RemoteProtocolError) -> bool:
        status = error.error_status_hint
        if status == 431:
            return self._refuse(431, answers.head_too_large(self.bounds.max_header_bytes))
        if status == 501:
            return self._refuse(501, answers.NOT_IMPLEMENTED)
        return self._refuse(400, answers.malformed(str(error)))

    def _refuse(self, status: int, sentence: str) -> bool:
        """Answer a request we will not serve, then close (False: the caller returns it)."""
        token = requestids.current.set(self.request_id)
        log.info("front listener: %d to %s: %s", status, self.peer, sentence)
        requestids.current.reset(token)
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return False  # part of an answer went out already
        self._status = status
        try:
            self.client.sendall(_error_answer(status, sentence, self.request_id, head_only=self._head_only,
                                              keep_alive=False))
            self._linger()
        except OSError:
            pass
        return False

    def _linger(self) -> None:
        """Read and drop what the client still sends, for a moment, so that it reads our answer
        rather than a reset (a body past the limit is still on its way)."""
        self.client.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_S
        while (left := deadline - time.monotonic()) > 0:
            self._set_timeout(left)
            if not self.client.recv(_CHUNK):
                return


def _next_event(connection: h11.Connection, stream):
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(stream.recv(_CHUNK))


def _long_body_length(response: h11.Response) -> int | None:
    """The Content-Length of an answer to relay past h11 (:meth:`_Conversation._relay_long_body`):
    one that has a body by that length alone, of at least ``_LONG_BODY``; else None. h11 still
    frames the rest: chunked bodies, bodies to the close, and the short ones, which mostly came
    whole with their head."""
    chunked = any(name == b"transfer-encoding" for name, _ in response.headers)
    if chunked or response.status_code in (204, 304):
        return None
    length = _content_length(response.headers)
    return length if length is not None and length >= _LONG_BODY else None


def _keeps_alive(response: h11.Response) -> bool:
    """Whether the job's connection may carry another request after this answer (RFC 9112 9.3)."""
    tokens = {token.strip().lower() for name, value in response.headers if name == b"connection"
              for token in value.split(b",")}
    return response.http_version == b"1.1" and b"close" not in tokens


def _head_size(request: h11.Request) -> int:
    """The bytes of the request line and headers, as sent but for extra spaces."""
    size = len(request.method) + len(request.target) + len(b" HTTP/1.1\r\n\r\n") + 1
    for name, value in request.headers.raw_items():
        size += len(name) + len(value) + 4
    return size


def _content_length(headers) -> int | None:
    """The declared Content-Length (h11 has checked it is one number), else None."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


def _upgrade_headers(headers) -> list[tuple[bytes, bytes]]:
    """``Connection: Upgrade`` and the ``Upgrade`` header of a websocket request, else nothing."""
    upgrade = [(name, value) for name, value in headers if name == b"upgrade"]
    asks = any(name == b"connection" and b"upgrade" in value.lower() for name, value in headers)
    return [(b"connection", b"Upgrade"), *upgrade] if upgrade and asks else []


def _switch_headers(response: h11.InformationalResponse) -> list[tuple[bytes, bytes]]:
    kept = [(n, v) for n, v in response.headers if n not in _HOP_BY_HOP]
    upgrade = [(n, v) for n, v in response.headers if n == b"upgrade"]
    return kept + [(b"connection", b"Upgrade"), *upgrade]


def _call_app(app, environ: dict, request_id: str, *, head_only: bool, keep_alive: bool) -> bytes:
    """The WSGI app's answer to ``environ``, as the bytes to send; our own JSON 500 when it fails.

    The answer is written here rather than through h11's events: the app gives a whole,
    well-formed answer, and h11's checks of it were a quarter of the listener's cost.
    """
    answer: dict = {}
    chunks: list[bytes] = []

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, headers
        return chunks.append

    try:
        result = app(environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()
        return _answer_bytes(answer["status"], answer["headers"], b"".join(chunks),
                             head_only=head_only, keep_alive=keep_alive)
    except Exception:  # noqa: BLE001 - one request's failure is its own 500
        log.exception("the API failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
        return _error_answer(500, answers.FAILED, request_id, head_only=head_only, keep_alive=keep_alive)


def _error_answer(status: int, sentence: str, request_id: str, *, head_only: bool, keep_alive: bool) -> bytes:
    return _answer_bytes(answers.title(status), [("Content-Type", "application/json"),
                                                 (requestids.HEADER, request_id)],
                         answers.error_document(status, sentence, request_id), head_only=head_only,
                         keep_alive=keep_alive)


def _answer_bytes(status: str, headers, body: bytes, *, head_only: bool, keep_alive: bool) -> bytes:
    """An HTTP/1.1 answer: ``status`` is ``"200 OK"``, ``headers`` WSGI's (str, str) pairs.

    The framing is ours: Content-Length from ``body`` (for a HEAD, the app's own), and
    ``Connection: close`` unless ``keep_alive``. ValueError for a header with a line break.
    """
    lines = ["HTTP/1.1 " + status]
    declared = None
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"the app's header {name!r} has a line break")
        lowered = name.lower()
        if lowered == "content-length":
            declared = value
        elif lowered not in _FRAMING:
            lines.append(f"{name}: {value}")
    code = int(status[:3])
    if code >= 200 and code not in (204, 304):
        app_length = head_only and declared and declared.isascii() and declared.isdigit()
        lines.append(f"Content-Length: {declared if app_length else len(body)}")
    else:
        body = b""
    if not keep_alive:
        lines.append("Connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + (b"" if head_only else body)


def serve_behind_front(app, settings, connector, domain: JobsDomain, listeners: list[socket.socket]) -> None:
    """Serve ``app`` and the job URLs on ``listeners`` (the API's port), until SIGTERM or Ctrl-C.

    The bounds waitress would have had apply: its threads, connection limit, channel timeout,
    header and body limits.
    """
    front = FrontListener(listeners, app, domain, connector, server_key=settings.server_key,
                          check_interval=settings.read(CHECK_INTERVAL),
                          bounds=Bounds.from_settings(settings)).start()
    try:
        while True:
            time.sleep(3600)
    finally:
        front.close()
