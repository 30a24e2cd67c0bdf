"""Secret JSON fields found by scanning tokens, for JSON that is not parsed: too deep for
the tree walk (codec.MAX_JSON_DEPTH), not well-formed, or too big to hold (a body over
bodies.BIG_BODY, fed a piece at a time).

The value after every key with a secret name becomes "REDACTED", a whole object or list
included; the strings taken out are collected in `removed`, to be scrubbed elsewhere. No
recursion, and memory bounded by a piece and the longest string kept (see the limits).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from .scrub import REDACTED, Removed

# One token: a whole string, a structural character, a bare word (number, true...),
# whitespace, or a quote that opens a string not ended in this piece.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s"{}\[\]:,]+|\s+|"', re.S)
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*', re.S)
_SPACE = re.compile(r"\s")

# Longer strings are not compared with the names (no secret name is that long) ...
KEY_LIMIT = 256
# ... nor, as removed values, hunted elsewhere in the exchange.
VALUE_LIMIT = 64 * 1024

_MARK = f'"{REDACTED}"'


@lru_cache(maxsize=32)
def json_needles(names: frozenset[str]) -> tuple[str, ...]:
    """What a JSON text holding a key of one of these names contains (unless the key is
    spelled with `\\u` escapes)."""
    return tuple(f'"{n}"' for n in sorted(names))


@lru_cache(maxsize=32)
def _plain_run(names: frozenset[str]) -> re.Pattern[str]:
    """Text outside strings, and whole strings without a backslash that are not one of the
    names (case-insensitively): what cannot start a secret field. Outside a string every
    quote opens one, so this never reads a string from its middle."""
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    not_a_name = f'(?!(?i:{alternatives})"|[^"]*\\\\)' if names else '(?![^"]*\\\\)'
    return re.compile(f'(?:[^"]+|"{not_a_name}[^"]*")*')


def _string_value(raw: str) -> str:
    """The text of a string token's content (escapes undone where they are valid)."""
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


class JsonFieldScan:
    """Feed it a JSON text a piece at a time (`feed`, then `end`); it gives the text back
    with secret fields replaced. `changed` says whether any was."""

    def __init__(self, names: frozenset[str], removed: Removed) -> None:
        self.names = names
        self.removed = removed
        self.changed = False
        self._pending = ""  # the start of a token cut at the end of the last piece
        self._after_key = False  # the last token was a string with a secret name
        self._await_value = False  # ... and a colon after it: the next value is dropped
        self._depth = 0  # > 0: inside a dropped object or list
        self._string: list[str] | None = None  # inside a string cut by a piece: its text
        self._string_size = 0
        self._string_dropped = False

    def feed(self, text: str) -> str:
        return self._scan(self._pending + text, final=False)

    def end(self) -> str:
        out = self._scan(self._pending, final=True)
        if self._string is not None:  # a string never closed
            out += self._end_string("")
        if self._depth > 0:  # an object or list never closed: dropped to the end
            self._depth = 0
            self.changed = True
            out += _MARK
        return out

    # -- strings ----------------------------------------------------------------------
    def _start_string(self) -> str:
        """A string begins: a dropped value is replaced whole, once, here."""
        self._string, self._string_size = [], 0
        self._string_dropped = self._depth > 0 or self._await_value
        starts_value = self._await_value
        self._await_value = False
        if self._string_dropped:
            return _MARK if starts_value else ""
        return '"'

    def _string_text(self, text: str) -> str:
        assert self._string is not None
        if self._string_size <= VALUE_LIMIT:
            self._string.append(text)
        self._string_size += len(text)
        return "" if self._string_dropped else text

    def _end_string(self, closing: str) -> str:
        raw = "".join(self._string or ())
        size, dropped = self._string_size, self._string_dropped
        self._string = None
        if dropped:
            if self._depth == 0 and raw == REDACTED:
                return ""  # redacted already: nothing changed
            if self._depth == 0:
                self.changed = True
            if size <= VALUE_LIMIT:
                self.removed.add(_string_value(raw))
            self._after_key = False
            return ""
        self._after_key = size <= KEY_LIMIT and _string_value(raw).lower() in self.names
        return closing

    # -- the scan ---------------------------------------------------------------------
    def _scan(self, buf: str, final: bool) -> str:
        self._pending = ""
        out: list[str] = []
        i, n = 0, len(buf)
        if self._string is not None:
            i = self._continue_string(buf, 0, final, out)
        while i < n:
            if not (self._depth or self._await_value or self._after_key) and self._string is None:
                i = self._skip(buf, i, out)
                if i >= n:
                    break
            m = _TOKEN.match(buf, i)
            assert m is not None  # every character starts one of the alternatives
            tok, j = m.group(), m.end()
            first = tok[0]
            if first == '"':
                out.append(self._start_string())
                if len(tok) == 1:  # an opening quote: the string ends in a later piece
                    i = self._continue_string(buf, j, final, out)
                    continue
                out.append(self._string_text(tok[1:-1]))
                out.append(self._end_string('"'))
            elif _SPACE.match(first):
                if self._depth == 0:
                    out.append(tok)
            elif j == n and not final and first not in "{}[]:,":
                self._pending = buf[i:]  # a bare word the next piece may go on with
                break
            else:
                out.append(self._structural_or_word(tok))
            i = j
        return "".join(out)

    def _skip(self, buf: str, i: int, out: list[str]) -> int:
        """Where nothing is being dropped: pass the text on up to the next string that could
        be a secret key (one with a secret name, or escapes), or one not ended in this piece;
        where to go on token by token. Everything else (values, structure, other keys)
        changes nothing here, and one regex passes over it far faster than tokens taken one
        by one in Python."""
        end = _plain_run(self.names).match(buf, i).end()  # type: ignore[union-attr]
        out.append(buf[i:end])
        return end

    def _continue_string(self, buf: str, i: int, final: bool, out: list[str]) -> int:
        """Read the string begun before `i` as far as this piece goes; where to go on."""
        m = _STRING_REST.match(buf, i)
        assert m is not None
        j = m.end()
        out.append(self._string_text(buf[i:j]))
        if j < len(buf) and buf[j] == '"':
            out.append(self._end_string('"'))
            return j + 1
        if not final:
            self._pending = buf[j:]  # nothing, or a backslash whose escape comes next
        else:
            out.append(self._string_text(buf[j:]))
        return len(buf)

    def _structural_or_word(self, tok: str) -> str:
        if self._depth > 0:
            if tok in ("{", "["):
                self._depth += 1
            elif tok in ("}", "]"):
                self._depth -= 1
                if self._depth == 0:
                    self.changed = True
                    return _MARK
            return ""
        if self._await_value:
            self._await_value = False
            if tok in ("{", "["):
                self._depth = 1
                return ""
            if tok not in ("}", "]", ":", ","):
                self.changed = True  # a number, true, null...: replaced, not hunted
                return _MARK
        elif self._after_key and tok == ":":
            self._after_key = False
            self._await_value = True
            return tok
        self._after_key = False
        return tok


def redact_json_tokens(text: str, names: frozenset[str], removed: Removed) -> str | None:
    """A whole JSON text with its secret fields replaced; None if nothing was."""
    scan = JsonFieldScan(names, removed)
    out = scan.feed(text) + scan.end()
    return out if scan.changed else None
