"""The metrics port: ``GET /metrics`` without the server key, for Prometheus to scrape the pod.

It serves nothing else (404), on ``WAITRESS_BIND_ADDRESS`` and ``DSSR_METRICS_PORT`` (9464,
the port OpenTelemetry's Prometheus exporters use; ``off`` turns it off), from a thread of
``dssr serve``. On the API's port ``/metrics`` needs the server key like every endpoint: the
chart's Ingress shows that port to users' browsers.
"""

import logging
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dssr_core import metrics
from dssr_core.declarations import Setting
from dssr_core.errors import SettingsError
from dssr_core.numbers import whole_number

log = logging.getLogger(__name__)

METRICS_PORT = Setting(
    "DSSR_METRICS_PORT", "port of `GET /metrics` without the server key (Prometheus's scrape); `off`: "
    "none (`/metrics` on the API's port needs the key)", default="9464")
SETTINGS = (METRICS_PORT,)


def metrics_port(settings) -> int | None:
    """The port to serve metrics on, None when off; SettingsError for anything else."""
    text = settings.read(METRICS_PORT).strip().lower()
    if text in ("off", "false", "no", "none"):
        return None
    port = whole_number(text)
    if port is None or not 0 <= port <= 65535:
        raise SettingsError(f"DSSR_METRICS_PORT must be a port (0 to 65535) or off; got {text!r}.")
    return port


def metrics_app(environ, start_response):
    """WSGI: the metrics at ``/metrics``, a 404 elsewhere."""
    if environ.get("PATH_INFO") != "/metrics":
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Only /metrics is served on this port.\n"]
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"),
                                                  ("Content-Type", "text/plain; charset=utf-8")])
        return [b"/metrics takes GET.\n"]
    body = metrics.exposition()
    start_response("200 OK", [("Content-Type", metrics.CONTENT_TYPE),
                              ("Content-Length", str(len(body)))])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # a scrape every few seconds is not news


def serve_metrics(host: str, port: int) -> WSGIServer:
    """Serve :func:`metrics_app` on ``host:port`` from a daemon thread; the server (``server_port``)."""
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, metrics_app, server_class=server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="dssr-metrics", daemon=True).start()
    log.info("metrics on port %d: GET /metrics, no key", server.server_port)
    return server
