"""How waitress serves the app: its connection bounds and body limit, from the settings."""

#: Waitress reads a body whole before the app sees it, and answers 413 itself, in plain text
#: and often with a reset connection, past its own limit. It takes twice DSSR_MAX_BODY_BYTES,
#: so that the app's JSON 413 answers every body up to that.
WAITRESS_BODY_FACTOR = 2


def waitress_options(settings) -> dict:
    """Keyword arguments of ``waitress.serve`` for ``settings``."""
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
        "_quiet": True,
    }
