"""Request ids: the ``X-Request-Id`` that ties an answer upstream logged to DSSR's log lines.

A well-formed id that the caller sent (1 to 64 of ``A-Za-z0-9._-``) is kept; otherwise one is
made. Both listeners return it as ``X-Request-Id`` on every answer, put it in the JSON body
of every error as ``request_id``, and hold it in :data:`current` while the request is served,
so that every log line written for the request (the access and audit lines too) carries it.
No Falcon import: the front listener and waitress's error answers use it too.
"""

import contextvars
import os
import re

HEADER = "X-Request-Id"
#: The WSGI environ key under which a listener hands its id to the app.
ENVIRON_KEY = "dssr.request_id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: The id of the request this thread serves now, or None.
current: contextvars.ContextVar[str | None] = contextvars.ContextVar("dssr_request_id", default=None)


def new() -> str:
    """A fresh id: 16 hex digits, random."""
    return os.urandom(8).hex()


def accept(sent: str | bytes | None) -> str:
    """The caller's id when it is well formed, else a new one."""
    if isinstance(sent, bytes):
        sent = sent.decode("latin-1")
    if sent and _WELL_FORMED.fullmatch(sent):
        return sent
    return new()
