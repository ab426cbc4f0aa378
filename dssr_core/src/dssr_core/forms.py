"""Upstream's form, read within bounds: its size, its fields, and the JSON in ``args``.

``json.loads`` recurses once per nesting level (100,000 levels raise ``RecursionError``) and
allocates some 70 bytes per value, so that 8 MB of ``[{},{},...]`` become 200 MB of Python
objects. Before it runs, the text is checked: at most :data:`MAX_JSON_VALUES` values and
:data:`MAX_JSON_DEPTH` levels, which bounds the memory a request costs by a small multiple of
its size. Upstream's ``args`` hold a dozen values, three levels deep.
"""

import json
import re

import falcon
from falcon.media import URLEncodedFormHandler

from dssr_core import answers
from dssr_core.errors import InvalidRequest

MAX_FORM_FIELDS = 16
MAX_JSON_DEPTH = 64
MAX_JSON_VALUES = 10_000

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STRUCTURE = ",:[{"


class BoundedFormHandler(URLEncodedFormHandler):
    """``application/x-www-form-urlencoded`` read up to ``max_body_bytes``, few fields."""

    def __init__(self, max_body_bytes: int):
        super().__init__()
        self.max_body_bytes = max_body_bytes

    def deserialize(self, stream, content_type, content_length):
        body = stream.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            raise body_too_large(None, self.max_body_bytes)
        if body.count(b"&") >= MAX_FORM_FIELDS:
            raise InvalidRequest(
                f"The form has more than {MAX_FORM_FIELDS} fields; send one, args."
            )
        return self._deserialize(body)


def body_too_large(length: int | None, limit: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(description=answers.body_too_large(length, limit))


def parse_args_json(text: str) -> dict:
    """The JSON object in ``text``, or InvalidRequest saying what is wrong with it."""
    check_json_bounds(text)
    try:
        args = json.loads(text)
    except ValueError:
        raise InvalidRequest("The form field args is not valid JSON.") from None
    if not isinstance(args, dict):
        raise InvalidRequest("The form field args must be a JSON object.")
    if not all(map(_is_utf8, _strings(args))):
        raise InvalidRequest(
            "The form field args holds a lone UTF-16 surrogate (such as \\udcff); "
            "send text that is valid Unicode."
        )
    return args


def check_json_bounds(text: str) -> None:
    """InvalidRequest when ``text`` has too many values or levels to parse safely."""
    if sum(map(text.count, _STRUCTURE)) <= MAX_JSON_VALUES and text.count("[") + text.count(
        "{"
    ) <= MAX_JSON_DEPTH:
        return  # nothing in it can exceed either bound: the common case, without a copy
    skeleton = _JSON_STRING.sub('""', text)
    if '"' in skeleton.replace('""', ""):
        raise InvalidRequest("The form field args is not valid JSON (a string is not closed).")
    values = sum(map(skeleton.count, _STRUCTURE))
    if values > MAX_JSON_VALUES:
        raise InvalidRequest(
            f"The form field args holds more than {MAX_JSON_VALUES} JSON values; upstream's "
            "arguments hold a few dozen."
        )
    brackets = _NOT_A_BRACKET.sub("", skeleton)
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return
        shorter = brackets.replace("[]", "").replace("{}", "")
        if shorter == brackets:
            raise InvalidRequest("The form field args is not valid JSON (brackets do not match).")
        brackets = shorter
    if brackets:
        raise InvalidRequest(
            f"The form field args is nested more than {MAX_JSON_DEPTH} levels deep."
        )


def _strings(value):
    """Every string in a parsed JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
