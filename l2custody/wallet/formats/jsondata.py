"""Typed access to JSON that other tools wrote: every reader goes through here.

A wallet file is foreign data. Its values reach the descriptor, the store
and messages only through these accessors, which check each value's type
(a name given as a list, a key given as a string instead of an object, a
count given as ``true``) and raise DescriptorError naming the field and what
was expected, never KeyError or TypeError.
"""

from __future__ import annotations

from collections.abc import Iterator

from l2custody import strict_json
from l2custody.errors import DescriptorError


def load_json(text: str, what: str) -> object:
    """Parse ``text`` as JSON, strictly (``strict_json``: a member given twice, NaN and
    absurd nesting are refused); DescriptorError naming the place if it is not."""
    try:
        return strict_json.loads(text, what, DescriptorError)
    except ValueError as exc:  # over-long numbers (Python's int-string limit)
        raise DescriptorError(f"{what} is not JSON this tool can read ({type(exc).__name__})") from None


def kind_of(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class JsonObject:
    """A JSON object read from ``where`` (e.g. "the Caravan file", "key 2")."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise DescriptorError(f"{where} must be a JSON object {{...}}, not {kind_of(data)}")
        self.data: dict[str, object] = data
        self.where = where

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self) -> Iterator[str]:
        return iter(self.data)

    def _field(self, key: str) -> object:
        if key not in self.data:
            raise DescriptorError(f"{self.where} has no {key!r}")
        return self.data[key]

    def _wrong(self, key: str, wanted: str) -> DescriptorError:
        return DescriptorError(f"{self.where}: {key!r} must be {wanted}, not {kind_of(self.data[key])}")

    def text(self, key: str) -> str:
        """A required non-empty string."""
        value = self._field(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        if not value.strip():
            raise DescriptorError(f"{self.where}: {key!r} is empty")
        return value.strip()

    def optional_text(self, key: str) -> str | None:
        """A string if present and not null/empty, else None."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value.strip() or None

    def integer(self, key: str) -> int:
        """A required whole number (``true`` and ``2.5`` are refused)."""
        value = self._field(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "a whole number")
        return value

    def optional_integer(self, key: str) -> int | None:
        if self.data.get(key) is None:
            return None
        return self.integer(key)

    def flag(self, key: str, default: bool) -> bool:
        """``true``/``false`` if present, else ``default``."""
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def obj(self, key: str, where: str | None = None) -> JsonObject:
        """A required nested object."""
        return JsonObject(self._field(key), where or f"{self.where}: {key!r}")

    def array(self, key: str) -> list[object]:
        """A required list."""
        value = self._field(key)
        if not isinstance(value, list):
            raise self._wrong(key, "a list")
        return value
