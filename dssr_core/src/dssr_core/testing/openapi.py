"""Every answer a test sees, checked against ``dssr_core/openapi.json``.

:class:`ApiClient` calls :meth:`ContractCheck.check` on each answer, so that an endpoint whose
answer drifts from the document fails the test that saw it. Needs ``jsonschema`` (the
``dssr_core[testing]`` extra).
"""

import functools
import json
import re

from dssr_core.app import openapi_document_bytes


class ContractCheck:
    """The document's operations, their status codes, media types and JSON Schemas."""

    def __init__(self, document: dict):
        import jsonschema

        self.document = document
        self._validator_class = jsonschema.Draft202012Validator
        self._operations = [
            (_template_pattern(path), path, method.upper(), operation)
            for path, item in document["paths"].items()
            for method, operation in item.items() if method != "parameters"
        ]

    def operation(self, method: str, path: str) -> tuple[str, dict] | None:
        """``(template, operation)`` that answers ``method path``, or None."""
        path = path.split("?", 1)[0]
        path = path.rstrip("/") or "/"  # as the app routes it (strip_url_path_trailing_slash)
        matches = [(template, operation) for pattern, template, verb, operation in self._operations
                   if verb == method.upper() and pattern.fullmatch(path)]
        # A literal path (/request/pvcls) wins over a template that also matches it.
        matches.sort(key=lambda found: found[0].count("{"))
        return matches[0] if matches else None

    def check(self, method: str, path: str, status: int, content_type: str, text: str) -> None:
        """AssertionError, saying what differs, when the answer is not one the document has."""
        found = self.operation(method, path)
        where = f"{method} {path} answered {status}"
        if found is None:
            assert status >= 400, f"{where}, but the OpenAPI document has no such operation"
            self._check_json(where, self._schema_ref("Error"), content_type, text)
            return
        template, operation = found
        response = operation["responses"].get(str(status))
        assert response is not None, (f"{where}: the OpenAPI document lists "
                                      f"{', '.join(operation['responses'])} for {method} {template}")
        response = self._resolve(response)
        media = content_type.split(";", 1)[0].strip().lower()
        content = response.get("content", {})
        if not text and media in ("", "text/plain") and "text/plain" in content:
            return
        assert media in content, f"{where} as {media or 'no media type'}; documented: {', '.join(content)}"
        if media == "application/json":
            self._check_json(where, content[media]["schema"], content_type, text)

    def _check_json(self, where: str, schema: dict, content_type: str, text: str) -> None:
        assert content_type.startswith("application/json"), f"{where} as {content_type!r}, not JSON"
        try:
            body = json.loads(text)
        except ValueError:
            raise AssertionError(f"{where} with a body that is not JSON: {text[:200]!r}") from None
        validator = self._validator_class({**schema, "components": self.document["components"]})
        error = next(iter(validator.iter_errors(body)), None)
        assert error is None, (f"{where} with {text[:300]!r}, which does not match the OpenAPI "
                               f"document: {error.message if error else ''}")

    def _resolve(self, item: dict) -> dict:
        while "$ref" in item:
            node = self.document
            for part in item["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            item = node
        return item

    @staticmethod
    def _schema_ref(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}


def _template_pattern(template: str) -> re.Pattern:
    """``/request/{name}/{jobid}`` as a pattern of one path segment per parameter."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))


@functools.cache
def contract_check() -> ContractCheck:
    """The check for the document that this dssr_core serves."""
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        raise ImportError("dssr_core.testing checks answers against openapi.json with jsonschema: "
                          "pip install 'dssr_core[testing]'") from None
    return ContractCheck(json.loads(openapi_document_bytes()))
