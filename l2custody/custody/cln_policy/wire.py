"""lightningd's messages to the plugin, framed and parsed so that the plugin judges exactly
what lightningd runs, and nothing on the wire can stop the plugin.

What lightningd v25.12.1 sends (read from its source):

- Each message is one JSON object followed by ``\\n\\n``, with the envelope it builds itself
  first: ``{"jsonrpc":"2.0","id":...,"method":"...","params":{...}}``
  (``jsonrpc_request_start_`` in ``lightningd/jsonrpc.c``).
- An ``rpc_command`` hook carries the caller's request member by member, each token copied
  verbatim (``rpc_command_hook_serialize``, ``json_add_tok``): duplicate members, escaped
  key names, raw control characters inside strings (its jsmn parser accepts them, even a raw
  ``\\n\\n``) and any nesting depth reach the plugin unchanged.
- lightningd reads a member with ``json_get_member``, which takes the *first* member whose
  raw key equals the name; Python's ``json`` keeps the *last*, after decoding escapes.

So the plugin (``plugins/l2custody_plugin.py``) frames messages by their JSON structure
(:class:`Framer`: a ``\\n\\n`` inside a string is not a message boundary, so a caller's
string can never smuggle in a message of its own), and :func:`read_message` accepts a
message only if strict JSON reads it with one meaning: no member twice at any depth (after
decoding escapes, so an escaped duplicate counts), no raw control character in a string, at
most :data:`MAX_DEPTH` levels, ``NaN``/``Infinity`` refused. Anything else is a
:class:`Unreadable`; :func:`envelope` still finds lightningd's own ``id`` and ``method`` so
the plugin can answer that call with a refusal. Pure code: no pyln, no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from l2custody import strict_json
from l2custody.custody.cln_policy.psbt_check import Malformed

#: Deeper messages are refused; lightningd's own payloads nest a few levels.
MAX_DEPTH = 64
#: A message larger than this is refused unread (a PSBT of thousands of inputs still fits).
MAX_MESSAGE = 64 * 1024 * 1024

_OUTSIDE = re.compile(rb'[{}\[\]"]')
_INSIDE = re.compile(rb'["\\]')


class Unreadable(Malformed):
    """A message the plugin will not act on; its call is refused."""


@dataclass(frozen=True)
class Frame:
    """One complete top-level JSON value from the stream (or stray bytes between values)."""

    raw: bytes
    depth: int  # the deepest nesting seen
    stray: bool = False  # bytes outside any object: never a message


class Framer:
    """Splits lightningd's byte stream into messages by JSON structure (strings and nesting
    tracked, no recursion), never by a blank line that may sit inside a string."""

    def __init__(self) -> None:
        self._buf = bytearray()  # appended to in place: a large message costs linear time
        self._pos = 0  # scan position in _buf
        self._start = -1  # where the current value began
        self._depth = 0
        self._deepest = 0
        self._in_string = False

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data`` (a partial frame is kept for the next call)."""
        self._buf += data
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                break
            frames.append(frame)
        if self._start < 0 and self._pos >= len(self._buf):
            self._buf, self._pos = bytearray(), 0
        elif len(self._buf) - max(self._start, 0) > MAX_MESSAGE:
            frames.append(Frame(bytes(self._buf[max(self._start, 0) :]), self._deepest, stray=self._start < 0))
            self._reset(b"")
        return frames

    def _reset(self, rest: bytes | bytearray) -> None:
        self._buf, self._pos, self._start = bytearray(rest), 0, -1
        self._depth = self._deepest = 0
        self._in_string = False

    def _next(self) -> Frame | None:
        if self._start < 0:
            stray = self._begin()
            if stray is not None or self._start < 0:
                return stray
        return self._scan()

    def _begin(self) -> Frame | None:
        """Find where the next value starts; bytes before it are a stray frame."""
        buf = self._buf
        rest = buf[self._pos :].lstrip()
        begin = len(buf) - len(rest)
        if not rest:
            self._pos = len(buf)
            return None
        if rest[:1] in (b"{", b"["):
            self._start = self._pos = begin
            return None
        found = buf.find(b"{", begin)
        stop = found if found >= 0 else len(buf)
        self._buf, self._pos = buf[stop:], 0
        return Frame(bytes(buf[begin:stop]), 0, stray=True)

    def _scan(self) -> Frame | None:
        """Advance through the current value; the frame once its outermost bracket closes."""
        buf = self._buf
        while True:
            hit = (_INSIDE if self._in_string else _OUTSIDE).search(buf, self._pos)
            if hit is None:
                self._pos = len(buf)
                return None
            at = hit.start()
            char = buf[at : at + 1]
            if self._in_string:
                if char == b"\\":
                    if at + 1 >= len(buf):
                        self._pos = at  # wait for the escaped byte
                        return None
                    self._pos = at + 2
                else:
                    self._in_string, self._pos = False, at + 1
                continue
            self._pos = at + 1
            if char == b'"':
                self._in_string = True
            elif char in (b"{", b"["):
                self._depth += 1
                self._deepest = max(self._deepest, self._depth)
            else:
                self._depth -= 1
                if self._depth == 0:
                    frame = Frame(bytes(buf[self._start : self._pos]), self._deepest)
                    self._reset(buf[self._pos :])
                    return frame


def read_message(frame: Frame) -> dict[str, Any]:
    """The message as one unambiguous JSON object; :class:`Unreadable` otherwise."""
    if frame.stray:
        raise Unreadable(f"bytes outside any JSON object: {frame.raw[:80]!r}")
    if frame.depth > MAX_DEPTH:
        raise Unreadable(f"the message nests {frame.depth} levels deep, more than the {MAX_DEPTH} the plugin reads")
    try:
        text = frame.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the message is not UTF-8 (byte {exc.start})") from None
    try:
        message = strict_json.decode(text)
    except strict_json.Refused as exc:
        raise Unreadable(f"{exc}: lightningd and the plugin could read it differently, so it is refused") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(f"the message is not strict JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise Unreadable("the message nests too deeply to read") from None
    if not isinstance(message, dict):
        raise Unreadable(f"a message must be a JSON object, got {type(message).__name__}")
    return message


@dataclass(frozen=True)
class Envelope:
    """lightningd's own ``id`` and ``method`` of a message, found even when the rest is unreadable."""

    id: Any  # None: a notification (or no id could be found: nothing to answer)
    method: str | None


_MEMBER = re.compile(rb'\s*"((?:[^"\\]|\\.)*)"\s*:\s*', re.S)
_STRING = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.S)
_PRIMITIVE = re.compile(rb"[-0-9A-Za-z.+]+")


def envelope(frame: Frame) -> Envelope:
    """The first top-level ``id`` and ``method`` members (raw keys, as lightningd reads them)."""
    raw = frame.raw
    found: dict[bytes, Any] = {}
    pos = raw.find(b"{")
    if frame.stray or pos < 0:
        return Envelope(None, None)
    pos += 1
    while b"id" not in found or b"method" not in found:
        member = _MEMBER.match(raw, pos)
        if member is None:
            break
        key, pos = member.group(1), member.end()
        value, pos = _value(raw, pos)
        if key in (b"id", b"method") and key not in found:
            found[key] = value
        comma = re.compile(rb"\s*,").match(raw, pos)
        if comma is None:
            break
        pos = comma.end()
    method = found.get(b"method")
    return Envelope(found.get(b"id"), method if isinstance(method, str) else None)


def _value(raw: bytes, pos: int) -> tuple[Any, int]:
    """One member value: a decoded string or number, or a skipped object/array (None)."""
    string = _STRING.match(raw, pos)
    if string is not None:
        try:
            return json.loads(string.group(0).decode("utf-8", "replace"), strict=False), string.end()
        except ValueError:
            return None, string.end()
    primitive = _PRIMITIVE.match(raw, pos)
    if primitive is not None:
        try:
            return json.loads(primitive.group(0)), primitive.end()
        except ValueError:
            return None, primitive.end()
    if raw[pos : pos + 1] in (b"{", b"["):
        inner = Framer()
        frames = inner.feed(raw[pos:])
        if frames and not frames[0].stray:
            return None, pos + len(frames[0].raw)
    return None, len(raw)
