"""Interactive jobs' URLs: the one ``JARVICE_JOBS_DOMAIN`` gives, and the route back from a request.

``JARVICE_JOBS_DOMAIN`` is path-based when it holds a ``$`` (``mydomain.com/job$``: job 7 is
``https://mydomain.com/job7``) and host-based otherwise (``mydomain.com``: job 7 is
``https://<JARVICE_JOBS_NAMESPACE>-7.mydomain.com``). A scheme and port written out are kept
(``http://myingress.io:8080/job$``); without a scheme the URL is ``https`` (TLS is the
Ingress's).

The front listener (:mod:`dssr_core.front`) asks :meth:`JobsDomain.route` which job a request
is for: by its path (path-based) or its ``Host`` header (host-based); everything else is the
legacy API's.
"""

import re
from urllib.parse import unquote

import attrs

from dssr_core.declarations import Setting
from dssr_core.errors import InvalidRequest, SettingsError

JOBS_DOMAIN = Setting(
    "JARVICE_JOBS_DOMAIN", "where users open interactive jobs, through DSSR's proxy: path-based "
    "`mydomain.com/job$` gives `https://mydomain.com/job<number>`, host-based `mydomain.com` gives "
    "`https://<JARVICE_JOBS_NAMESPACE>-<number>.mydomain.com`; a scheme and port may be written out "
    "(`http://myingress.io:8080/job$`). When set, interactive jobs are accepted and proxied",
    default_text="not set: no proxy, interactive jobs only where users reach the nodes")
JOBS_NAMESPACE = Setting("JARVICE_JOBS_NAMESPACE", "the first part of a host-based job URL's host name",
                         default="jarvice-system-jobs")

_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_NUMBER = re.compile(r"^[0-9]{1,12}$")


@attrs.frozen
class JobRoute:
    """A request for interactive job ``number``; ``target`` is what the job's service is asked."""

    number: int
    target: str


@attrs.frozen
class JobsDomain:
    """``JARVICE_JOBS_DOMAIN`` read: scheme, host, port, and the path prefix when path-based."""

    scheme: str
    host: str
    port: int | None
    path_prefix: str | None
    namespace: str

    @classmethod
    def from_settings(cls, settings) -> "JobsDomain | None":
        """The domain, or None when ``JARVICE_JOBS_DOMAIN`` is not set."""
        text = settings.read(JOBS_DOMAIN)
        return None if not text else cls.parse(text, settings.read(JOBS_NAMESPACE))

    @classmethod
    def parse(cls, text: str, namespace: str = "jarvice-system-jobs") -> "JobsDomain":
        scheme, sep, rest = text.strip().partition("://")
        if not sep:
            scheme, rest = "https", text.strip()
        if scheme not in ("http", "https"):
            raise SettingsError(f"JARVICE_JOBS_DOMAIN must start with http:// or https:// (or neither), "
                                f"not {scheme}://.")
        authority, slash, path = rest.partition("/")
        host, colon, port = authority.lower().partition(":")
        if not _HOST.match(host) or (colon and not (_PORT.match(port) and 0 < int(port) < 65536)):
            raise SettingsError(f"JARVICE_JOBS_DOMAIN must be a host name with an optional :port "
                                f"(such as mydomain.com/job$), not {text!r}.")
        prefix = None
        if slash:
            if not path.endswith("$") or "$" in path[:-1] or not re.match(r"^[A-Za-z0-9._~/-]*\$$", path):
                raise SettingsError("A path-based JARVICE_JOBS_DOMAIN ends in $, where the job number goes "
                                    f"(such as mydomain.com/job$), and has no other $; not {text!r}.")
            prefix = "/" + path[:-1]
            if prefix == "/" or prefix.endswith("/") or "//" in prefix or "/." in prefix:
                raise SettingsError("The path of JARVICE_JOBS_DOMAIN needs letters before the $ (such as "
                                    f"/job$), without . segments or a trailing /; not {text!r}.")
        if prefix is None and not _NAMESPACE.match(namespace):
            raise SettingsError(f"JARVICE_JOBS_NAMESPACE must be a DNS label, not {namespace!r}.")
        return cls(scheme, host, int(port) if colon else None, prefix, namespace)

    @property
    def path_based(self) -> bool:
        return self.path_prefix is not None

    def url_for(self, number: int) -> str:
        """The URL at which users open interactive job ``number``."""
        return self._url(str(int(number)))

    def describe(self) -> str:
        """The URL of any job, for the init report."""
        return f"{self._url('<number>')} ({'path-based' if self.path_based else 'host-based'})"

    def _url(self, number: str) -> str:
        port = f":{self.port}" if self.port is not None else ""
        if self.path_based:
            return f"{self.scheme}://{self.host}{port}{self.path_prefix}{number}"
        return f"{self.scheme}://{self.namespace}-{number}.{self.host}{port}"

    def route(self, target: str, host: str | None) -> JobRoute | None:
        """The job a request is for, or None when it is the API's; InvalidRequest when ambiguous.

        ``target`` is the request line's target and ``host`` the one ``Host`` header.
        Only origin-form targets (``/path?query``) are taken: an absolute-form or authority-form
        target, or a path with ``.``/``..`` segments or encoded slashes, is refused.
        """
        check_target(target)
        if self.path_based:
            return self._route_by_path(target)
        number = self._number_from_host(host)
        return None if number is None else JobRoute(number, target)

    def _route_by_path(self, target: str) -> JobRoute | None:
        prefix = self.path_prefix
        if not target.startswith(prefix):
            return None
        match = re.match(r"^([0-9]+)([/?].*)?$", target[len(prefix):], re.DOTALL)
        if match is None:
            return None
        if not _NUMBER.match(match.group(1)):
            raise InvalidRequest("That job number is too long.")
        rest = match.group(2) or "/"
        return JobRoute(int(match.group(1)), rest if rest.startswith("/") else "/" + rest)

    def _number_from_host(self, host: str | None) -> int | None:
        if host is None:
            return None
        name = host.strip().lower()
        if name.endswith("]") or name.count(":") > 1:  # an IPv6 literal is never a job's host
            return None
        name = name.partition(":")[0].rstrip(".")
        label, dot, rest = name.partition(".")
        if not dot or rest != self.host or not label.startswith(self.namespace + "-"):
            return None
        number = label[len(self.namespace) + 1:]
        if not _NUMBER.match(number):
            raise InvalidRequest(f"The host {host!r} names no job number.")
        return int(number)


def check_target(target: str) -> None:
    """InvalidRequest unless ``target`` is an origin-form target without dot segments."""
    if not target.startswith("/"):
        raise InvalidRequest("The request target must be a path starting with / (this is no forward proxy).")
    path = target.split("?", 1)[0]
    decoded = unquote(path)
    if "\\" in decoded or "%2f" in path.lower() or "%5c" in path.lower() or "\0" in decoded:
        raise InvalidRequest("The request path has an encoded / or a \\; say the path plainly.")
    if any(segment in (".", "..") for segment in decoded.split("/")):
        raise InvalidRequest("The request path has . or .. segments; say the path plainly.")
