"""Container images: reference parsing, registry names, and the init and app image rules.

Registries are compared by their canonical host: lower case, no scheme, no path, and every
spelling of Docker Hub (``index.docker.io``, ``registry-1.docker.io``,
``https://index.docker.io/v1/``, or no host at all) as ``docker.io``.
"""

import re

import attrs

from dssr_core.errors import InvalidRequest, SettingsError

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com",
     "hub.docker.com"}
)

#: Go's names for the machine architectures JARVICE runs on (``platform.machine()`` and
#: ``JOBOBJ_ARCH`` may use either spelling).
GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

# Docker's reference grammar (distribution/reference), slightly simplified.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?:{_LABEL})(?:\.{_LABEL})*(?::[0-9]{{1,5}})?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@attrs.frozen
class ImageRef:
    """A parsed ``[registry/]path[:tag][@digest]`` reference.

    ``registry`` is the host as written, ``None`` for Docker Hub's short form (``ubuntu``).
    """

    registry: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, field: str) -> "ImageRef":
        """Parse ``text`` (a leading ``docker://`` is allowed); InvalidRequest names ``field``."""
        try:
            return cls._parse(text.strip().removeprefix("docker://"))
        except ValueError as problem:
            raise InvalidRequest(
                f"{field} must be a container image such as registry.example.com/team/app:1.0 "
                f"({problem}), not {_shown(text)}."
            ) from None

    @classmethod
    def _parse(cls, ref: str) -> "ImageRef":
        if not ref:
            raise ValueError("it is empty")
        if len(ref) > 512:
            raise ValueError("it is longer than 512 characters")
        if _SCHEME.match(ref):
            raise ValueError("only docker:// images can be pulled")
        name, at, digest = ref.partition("@")
        if at and not _DIGEST.match(digest):
            raise ValueError("the digest is not of the form sha256:<hex>")
        tag = None
        if name.rfind(":") > name.rfind("/"):
            name, _, tag = name.rpartition(":")
            if not _TAG.match(tag):
                raise ValueError("the tag has characters a tag cannot have")
        parts = name.split("/")
        registry = parts.pop(0) if len(parts) > 1 and _is_host(parts[0]) else None
        if registry is not None and not _HOST.match(registry):
            raise ValueError("the registry is not a host name")
        if not all(_COMPONENT.match(part) for part in parts):
            raise ValueError("a repository name is lower-case letters, digits and separators . _ -")
        return cls(registry, "/".join(parts), tag, digest or None)

    @property
    def canonical_registry(self) -> str:
        """The registry host used to match credentials and lists: ``docker.io`` for Hub."""
        return canonical_registry(self.registry) if self.registry else DOCKER_HUB

    @property
    def hub_path(self) -> str:
        """The path as a registry serves it: Docker Hub's official images live in library/."""
        if self.canonical_registry == DOCKER_HUB and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    @property
    def qualified_name(self) -> str:
        """``registry/path`` with the registry made explicit, without tag or digest."""
        return f"{self.canonical_registry}/{self.hub_path}"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.path}" if self.registry else self.path
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def url(self) -> str:
        """The ``docker://`` URL that ``singularity pull`` takes."""
        return f"docker://{self}"


def _is_host(component: str) -> bool:
    """Docker's rule: the first component is a registry when it looks like a host."""
    return "." in component or ":" in component or component == "localhost"


def _shown(text: str) -> str:
    value = repr(text)
    return value if len(value) <= 80 else value[:77] + "..."


def canonical_registry(server: str) -> str:
    """The canonical host of a registry as written in a secret, a setting or an image.

    >>> canonical_registry("https://index.docker.io/v1/")
    'docker.io'
    >>> canonical_registry("NVCR.io/nvidia")
    'nvcr.io'
    """
    host = _SCHEME.sub("", server.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def check_registry(value: str, what: str) -> str:
    """A registry host[:port] from the setting ``what``."""
    host = _SCHEME.sub("", value.strip()).rstrip("/")
    if not _HOST.match(host):
        raise SettingsError(f"{what} must be a registry host such as registry.example.com:5000, "
                         f"not {_shown(value)}.")
    return host


def check_repo_base(value: str, what: str) -> str:
    """A repository path prefix (``team/images``) from the setting ``what``."""
    base = value.strip().strip("/")
    if not base or not all(_COMPONENT.match(part) for part in base.split("/")):
        raise SettingsError(f"{what} must be a repository path such as jarvice-system/images, "
                         f"not {_shown(value)}.")
    return base


def check_tag(value: str, what: str) -> str:
    """An image tag from the setting ``what``."""
    if not _TAG.match(value):
        raise SettingsError(f"{what} must be an image tag such as jarvice-master, not {_shown(value)}.")
    return value


def is_path_component(text: str) -> bool:
    """Whether ``text`` can be one component of a repository path (an app id, say)."""
    return bool(_COMPONENT.match(text))


def go_arch(arch: str) -> str:
    """Go's name for ``arch`` (``x86_64`` -> ``amd64``); unknown names pass through."""
    lowered = arch.strip().lower()
    return GO_ARCH.get(lowered, lowered)


def init_image(registry: str, repo_base: str, tag: str, appdefversion: int,
               host_arch: str, job_arch: str | None) -> ImageRef:
    """``<registry>/<repo_base>/initv<appdefversion>:<tag>``; no ``<repo_base>/`` when it is empty.

    A tag that ends in ``-<host_arch>`` (the Go architecture of the machine DSSR runs on) is
    switched to the job's architecture, so that an arm64 job gets an arm64 init image.
    """
    suffix = f"-{host_arch}"
    if job_arch and tag.endswith(suffix) and len(tag) > len(suffix):
        tag = tag[: -len(suffix)] + f"-{go_arch(job_arch)}"
    return ImageRef(registry, "/".join(filter(None, (repo_base, f"initv{appdefversion}"))), tag)


def in_proxy_repos(image: ImageRef, proxy_repos: tuple[str, ...]) -> bool:
    """Whether the image's name starts, at a path boundary, with one of ``proxy_repos``.

    Entries are compared with their registry made canonical, so ``docker.io/nimbix`` matches
    ``nimbix/app`` and ``index.docker.io/nimbix/app``; ``docker.io/ubuntu`` and
    ``docker.io/library/ubuntu`` both match ``ubuntu``.
    """
    names = {image.qualified_name, f"{image.canonical_registry}/{image.path}"}
    for entry in proxy_repos:
        host, _, rest = _SCHEME.sub("", entry.strip()).strip("/").partition("/")
        prefix = canonical_registry(host) + (f"/{rest}" if rest else "")
        if any(name == prefix or name.startswith(prefix + "/") for name in names):
            return True
    return False
