"""How waitress serves the app: its connection bounds and body limit, from the settings, and
its own error answers in the contract's JSON.

Waitress answers a malformed request, a head past its limit and a body past its own limit
before the app sees them. It makes those answers with its channel's ``error_task_class``; a
server's channel is its ``channel_class``. Both are public class attributes, meant to be
overridden and unchanged since waitress's first releases: DSSR's channel subclass has an error
task that writes the JSON error (:mod:`dssr_core.answers`) instead of waitress's plain text.
A test checks the answers, so that a waitress that stopped honouring them is seen.
"""

import logging

import waitress
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from dssr_core import answers, metrics, requestids

log = logging.getLogger(__name__)

#: Waitress reads a body whole before the app sees it, and answers 413 itself, often with a
#: reset connection, past its own limit. It takes twice DSSR_MAX_BODY_BYTES, so that the app's
#: 413 answers every body up to that.
WAITRESS_BODY_FACTOR = 2


def waitress_options(settings) -> dict:
    """Keyword arguments of ``waitress.create_server`` for ``settings``."""
    return {
        "host": settings.bind,
        "port": settings.port,
        "threads": settings.threads,
        "connection_limit": settings.connection_limit,
        "channel_timeout": settings.channel_timeout,
        "cleanup_interval": settings.cleanup_interval,
        "backlog": settings.backlog,
        "max_request_header_size": settings.max_header_bytes,
        "max_request_body_size": settings.max_body_bytes * WAITRESS_BODY_FACTOR + 1,
        # select() fails past 1,024 descriptors; poll() has no such bound.
        "asyncore_use_poll": True,
        "ident": "dssr",
    }


def serve_with_waitress(app, settings, sockets) -> None:
    """Serve ``app`` on ``sockets`` (bound and listening) until SIGTERM or Ctrl-C."""
    options = waitress_options(settings)
    del options["host"], options["port"]  # the sockets are bound already
    dispatchers: dict = {}
    server = waitress.create_server(app, map=dispatchers, sockets=sockets, **options)
    for dispatcher in list(dispatchers.values()):
        if isinstance(dispatcher, BaseWSGIServer):  # one per socket, beside waitress's trigger
            dispatcher.channel_class = JsonErrorChannel
    server.run()


class JsonErrorTask(ErrorTask):
    """Waitress's error answer, as the contract's JSON with a sentence for the caller."""

    def execute(self):
        status = self.request.error.code
        request_id = requestids.accept(self.request.headers.get("X_REQUEST_ID"))
        body = answers.error_document(status, waitress_sentence(self.request.error, self.channel.server.adj),
                                      request_id)
        self.status = answers.title(status)
        self.response_headers.append(("Content-Type", "application/json"))
        self.response_headers.append((requestids.HEADER, request_id))
        metrics.http_request(metrics.UNROUTED, "other", status, 0.0)
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask
    _tls_checked = False

    def received(self, data):
        """Close at once, with a hint in the log, when the first bytes are a TLS handshake:
        waitress would wait for a request line until the channel timeout."""
        if not self._tls_checked and data:
            self._tls_checked = True
            if answers.is_tls_hello(data):
                log.warning("%s", answers.tls_hint(f"{self.addr[0]}:{self.addr[1]}"
                                                   if isinstance(self.addr, tuple) else "a client"))
                self.handle_close()
                return False
        return super().received(data)


def waitress_sentence(error, adjustments) -> str:
    """The caller's sentence for one of waitress's errors (``waitress.utilities.Error``)."""
    if error.code == 431:
        return answers.head_too_large(adjustments.max_request_header_size)
    if error.code == 413:
        limit = (adjustments.max_request_body_size - 1) // WAITRESS_BODY_FACTOR
        return answers.body_too_large(None, limit)
    if error.code == 501:
        return answers.NOT_IMPLEMENTED
    if error.code >= 500:
        return answers.FAILED
    return answers.malformed(str(error.body))
