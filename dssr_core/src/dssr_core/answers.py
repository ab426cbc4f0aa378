"""The contract's error document for the answers a listener writes itself, outside the app.

The Falcon app answers its own errors (:func:`dssr_core.app._answer`); the front listener and
waitress answer a few before or around it: a malformed request, a head or body past its
limit, a slow head, a job that does not answer. They use the same shape,
``{"title": "413 Content Too Large", "description": "<a sentence>", "request_id": "<id>"}``,
and never name a file or a host. No Falcon import here: ``dssr settings`` and the client
commands load this module.
"""

import http
import json
import re

#: The caller's sentence for every 500: what failed is for the log, which names files and hosts.
FAILED = "DSSR failed on this request; the server log has the details."

#: Reason phrases where Python's table is older than RFC 9110 (and Falcon's).
_PHRASES = {413: "Content Too Large"}


def is_tls_hello(data: bytes) -> bool:
    """Whether ``data`` opens a TLS handshake (a record of type 22, version 3.x): an ``https://``
    URL that reaches a plain-HTTP listener. Such a client waits for a handshake that never
    comes; the listeners close at once and log :func:`tls_hint` instead."""
    return data[:2] == b"\x16\x03"


def tls_hint(peer: str) -> str:
    """The log line for a TLS handshake that reached a plain-HTTP listener."""
    return (f"{peer} began a TLS handshake (an https:// URL?) on this plain-HTTP port; closed. DSSR serves "
            "http://: call it with http://, or end TLS in an ingress or proxy in front of it")


def title(status: int) -> str:
    """``"404 Not Found"``: the status line's code and reason, as the app's titles are."""
    return f"{status} {_PHRASES.get(status) or http.HTTPStatus(status).phrase}"


def error_document(status: int, description: str, request_id: str) -> bytes:
    """The JSON body of an error answer, with the request's id: ASCII, so that any description
    serialises."""
    return json.dumps({"title": title(status), "description": description,
                       "request_id": request_id}).encode("ascii")


def malformed(reason: str) -> str:
    """The sentence of a request that is not valid HTTP/1.1.

    ``reason`` is the parser's (h11's or waitress's); what it quotes of the request (h11's
    ``b'...'`` or ``bytearray(b'...')``, waitress's ``"..."``) is cut: the caller knows what it sent.
    """
    short = re.split(r"""\s(?:b['"]|bytearray\()|["]""", reason, maxsplit=1)[0].strip().rstrip(":.")
    return f"The request is not valid HTTP/1.1 ({short or 'malformed'}); send a well-formed request."


def head_too_large(limit: int) -> str:
    return f"The request line and headers are larger than {limit} bytes (DSSR_MAX_HEADER_BYTES)."


def body_too_large(length: int | None, limit: int) -> str:
    """The sentence of the app's own 413 (:func:`dssr_core.forms.body_too_large`)."""
    size = f"{length} bytes" if length is not None else "larger than that"
    return f"The request body is {size}; the limit is {limit} bytes (DSSR_MAX_BODY_BYTES)."


NOT_IMPLEMENTED = ("The request's Transfer-Encoding is not supported; send the body with a "
                   "Content-Length, or chunked.")
