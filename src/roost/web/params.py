"""Request parameters as Mastodon reads them: query string merged with a form-encoded,
multipart or JSON body; arrays as ``name[]``; nested hashes as ``name[0][key]``."""

from __future__ import annotations

import builtins
import re
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request

from roost.domain.errors import BadRequest, InvalidInput, NotFound

TRUE = {"1", "true", "t", "on", "yes"}
FALSE = {"0", "false", "f", "off", "no", ""}
_NESTED = re.compile(r"^([^\[\]]+)\[([^\[\]]*)\]\[([^\[\]]+)\]$")
MAX_STRING = 100_000
MAX_ID = 2**63 - 1  # ids are signed 64-bit integers in the database


def parse_id(text: str) -> int | None:
    """A numeric id that fits the database, or None."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_ID:
        return None
    return int(text)


class Params:
    def __init__(self, values: dict[builtins.str, builtins.list[Any]]) -> None:
        self._values = values

    def __contains__(self, name: builtins.str) -> builtins.bool:
        return name in self._values or f"{name}[]" in self._values

    def _first(self, name: builtins.str) -> Any:
        values = self._values.get(name)
        return values[0] if values else None

    def str(self, name: builtins.str,
            default: builtins.str | None = None) -> builtins.str | None:
        value = self._first(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string")
        if len(value) > MAX_STRING:
            raise InvalidInput(f"{name} is too long")
        if "\x00" in value:
            raise InvalidInput(f"{name} must not contain NUL characters")
        return value

    def bool(self, name: builtins.str,
             default: builtins.bool | None = None) -> builtins.bool | None:
        value = self._first(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise InvalidInput(f"{name} must be a boolean")

    def int(self, name: builtins.str,
            default: builtins.int | None = None) -> builtins.int | None:
        value = self._first(name)
        if value is None or value == "":
            return default
        try:
            return int(str(value).strip())
        except ValueError:
            raise BadRequest(f"{name} must be an integer") from None

    def id(self, name: builtins.str) -> builtins.int | None:
        """An id parameter: numeric, as a string or number."""
        value = self._first(name)
        if value is None or value == "":
            return None
        parsed = parse_id(str(value))
        if parsed is None:
            raise BadRequest(f"{name} must be a numeric id")
        return parsed

    def list(self, name: builtins.str) -> builtins.list[Any]:
        return [*self._values.get(name, []), *self._values.get(f"{name}[]", [])]

    def ids(self, name: builtins.str) -> builtins.list[builtins.int]:
        out = []
        for value in self.list(name):
            parsed = parse_id(str(value))
            if parsed is None:
                raise BadRequest(f"{name} must contain numeric ids")
            out.append(parsed)
        return out

    def records(self, name: builtins.str) -> builtins.list[dict[builtins.str, Any]] | None:
        """A list of hashes: JSON list/object of objects, or form ``name[i][key]=value``."""
        direct = self._first(name)
        if isinstance(direct, list):
            return [r for r in direct if isinstance(r, dict)]
        if isinstance(direct, dict):
            return [direct[k] for k in sorted(direct, key=_index_key)
                    if isinstance(direct[k], dict)]
        found: dict[builtins.str, dict[builtins.str, Any]] = {}
        order: builtins.list[builtins.str] = []
        blank_counter = 0
        for key, values in self._values.items():
            match = _NESTED.match(key)
            if not match or match.group(1) != name:
                continue
            index, field = match.group(2), match.group(3)
            for value in values:
                slot = index
                if index == "":  # name[][key]: a new record when the key repeats
                    slot = f"_{blank_counter}"
                    if field in found.get(slot, {}):
                        blank_counter += 1
                        slot = f"_{blank_counter}"
                if slot not in found:
                    found[slot] = {}
                    order.append(slot)
                found[slot][field] = value
        if not found:
            return None
        return [found[k] for k in sorted(order, key=_index_key)]

    def hash(self, name: builtins.str) -> dict[builtins.str, Any]:
        """A hash given as JSON object or as form ``name[key]=value``."""
        direct = self._first(name)
        if isinstance(direct, dict):
            return direct
        prefix = f"{name}["
        return {k[len(prefix):-1]: v[0] for k, v in self._values.items()
                if k.startswith(prefix) and k.endswith("]") and v}


def _index_key(key: str) -> tuple[int, str]:
    stripped = key.lstrip("_")
    return (int(stripped), "") if stripped.isdigit() else (1 << 30, key)


async def read_params(request: Request) -> Params:
    values: dict[str, list[Any]] = {}
    for key, value in request.query_params.multi_items():
        values.setdefault(key, []).append(value)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            body = await request.body()
            if body.strip():
                try:
                    data = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise BadRequest("The request body is not valid JSON") from None
                if not isinstance(data, dict):
                    raise BadRequest("The request body must be a JSON object")
                for key, value in data.items():
                    if isinstance(value, list) and not any(isinstance(v, dict) for v in value):
                        values[key] = list(value)
                    else:
                        values[key] = [value]
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.form(max_files=8, max_fields=1000)
            except Exception:
                raise BadRequest("The request body could not be parsed") from None
            for key, item in form.multi_items():
                if not isinstance(item, UploadFile):
                    values.setdefault(key, []).append(item)
    return Params(values)


def path_id(request: Request, name: str = "id") -> int:
    """A numeric id from the path; anything else is simply not found, as in Mastodon."""
    text = request.path_params.get(name, "")
    parsed = parse_id(text) if isinstance(text, str) else None
    if parsed is None:
        raise NotFound()
    return parsed
