"""Logging for ``dssr serve`` and ``dssr check``: request threads queue records, one thread writes.

A write system call per access line, made by the request thread under the handler's lock,
made request threads queue behind each other (the API benchmark lost a third of its
throughput at 16 clients). Here a request thread formats its line and puts the record on a
queue (a :class:`~logging.handlers.QueueHandler`); one
:class:`~logging.handlers.QueueListener` thread writes the lines to stderr through a buffer,
flushed at once for a warning or worse and at least every half second otherwise. At exit it
writes what is queued before the process ends.

A line written while a request is served ends with its id, `` [request_id=...]``
(:mod:`dssr_core.requestids`). ``DSSR_LOG_FORMAT=json`` writes one JSON object per line
instead: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``request_id`` when
there is one, ``exception`` when there is one.
"""

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time
from datetime import UTC, datetime

from dssr_core import requestids
from dssr_core.settings import LOG_FORMAT as FORMAT_SETTING

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Seconds a line below WARNING may wait in the buffer. A write per line when the server is
#: idle cost a tenth more CPU per request at one client (bench/bench_api.py, CPU us/req).
FLUSH_INTERVAL_S = 0.5

_listener: logging.handlers.QueueListener | None = None
_formatter: logging.Formatter | None = None


class TextFormatter(logging.Formatter):
    """:data:`LOG_FORMAT`, and the request's id at the end of the line while one is served."""

    def __init__(self):
        super().__init__(LOG_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        request_id = requestids.current.get()
        return f"{line} [request_id={request_id}]" if request_id else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        request_id = requestids.current.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


#: The loggers JARVICE_SLURM_SCHED_LOGLEVEL sets: the connectors to a scheduler and what they share.
SCHEDULER_LOGGERS = ("dssr_slurm", "dssr_gridengine", "dssr_core.remote")


def configure_logging(settings) -> None:
    """Send records to stderr at the levels of ``JARVICE_SCHED_LOGLEVEL`` (and ``..._SLURM_...``),
    in the format of ``DSSR_LOG_FORMAT``."""
    global _formatter
    _formatter = JsonFormatter() if settings.read(FORMAT_SETTING) == "json" else TextFormatter()
    # The Logging HOWTO's optimisations for what LOG_FORMAT does not show: finding the
    # caller's frame and thread/process names cost more than the access line itself.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    stop_logging()
    records = queue.SimpleQueue()
    root = logging.getLogger()
    root.handlers[:] = [_formatted(LineQueueHandler(records))]
    root.setLevel(settings.log_level)
    slurm_level = settings.slurm_log_level
    for name in SCHEDULER_LOGGERS:
        logging.getLogger(name).setLevel(slurm_level)
    logging.getLogger("paramiko").setLevel(max(slurm_level, logging.WARNING))
    global _listener
    _listener = FlushingListener(records, BufferedWriter())
    _listener.start()
    atexit.unregister(stop_logging)
    atexit.register(stop_logging)


class LineQueueHandler(logging.handlers.QueueHandler):
    """Formats the whole line in the thread that logs, and queues the record for the writer."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # In place, not on a copy as the base class does: the root's handler is the record's
        # last reader, and the copy cost as much as the formatting.
        record.msg = record.message = self.format(record)
        record.args = record.exc_info = record.exc_text = record.stack_info = None
        return record


class BufferedWriter(logging.StreamHandler):
    """The listener's handler: writes each line (made by :class:`LineQueueHandler`) to a
    buffer over stderr, flushed for a warning or worse and at least every half second."""

    def __init__(self):
        super().__init__(open(sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8",
                              errors="backslashreplace", closefd=False))
        self.flushed_at = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING or time.monotonic() - self.flushed_at >= FLUSH_INTERVAL_S:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        super().flush()
        self.flushed_at = time.monotonic()


class FlushingListener(logging.handlers.QueueListener):
    """A QueueListener that, while no record comes, flushes its handlers every half second."""

    def dequeue(self, block: bool):
        while True:
            try:
                return self.queue.get(block, timeout=FLUSH_INTERVAL_S)
            except queue.Empty:
                for handler in self.handlers:
                    handler.flush()


def stop_logging() -> None:
    """Write what is queued, stop the writer thread; later records go straight to stderr."""
    global _listener
    listener, _listener = _listener, None
    if listener is None:
        return
    listener.stop()
    for writer in listener.handlers:
        writer.flush()
    logging.getLogger().handlers[:] = [_formatted(logging.StreamHandler(sys.stderr))]


def _formatted(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(_formatter or TextFormatter())
    return handler
