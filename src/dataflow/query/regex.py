"""``$regex`` patterns: one portable dialect of regular expressions, written out per backend.

PostgreSQL (ARE), MariaDB (PCRE2) and RE2 (SQLite's REGEXP, see dialects/sqlite_functions.py)
agree on literals, ``.``, classes, anchors, groups, alternation and counted repeats once three
differences are pinned down: ``.`` matches a newline everywhere, ``$`` is the end of the text
(not "before a final newline"), and ``\\d \\w \\s`` are their ASCII classes. Whatever they do
not agree on (backreferences, lookaround, ``\\b``, inline flags, POSIX classes) is refused, so
one pattern never answers differently on two backends. Matching is case-sensitive and
unanchored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dataflow.dialects import Dialect

_SETS = {"d": "0-9", "w": "0-9A-Za-z_", "s": " \t\n\r\f\v"}
_CONTROLS = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}
_BOUNDS = re.compile(r"\{(\d+(,\d*)?|,\d*)\}")
#: PostgreSQL's limit on counted repeats.
MAX_REPEAT = 255
_END = "\0end"


class RegexError(ValueError):
    """A pattern outside the portable dialect; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class Regex:
    """A checked pattern, ready to render for any backend."""

    source: str
    tokens: tuple[str, ...]

    def render(self, dialect: Dialect) -> str:
        end = dialect.regex_end
        return dialect.regex_flags + "".join(end if t == _END else t for t in self.tokens)


def _escaped(char: str) -> str:
    """A character that matches itself: ASCII punctuation gets a backslash on every backend."""
    if char.isascii() and not char.isalnum() and not char.isspace():
        return "\\" + char
    return char


class _Set(str):
    """The contents of ``\\d``, ``\\w`` or ``\\s``, for use inside ``[...]``."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out: list[str] = []

    def peek(self, ahead: int = 0) -> str | None:
        at = self.i + ahead
        return self.text[at] if at < len(self.text) else None

    def fail(self, message: str) -> RegexError:
        return RegexError(f"{message} (at position {self.i} of {self.text!r})")

    def parse(self) -> tuple[str, ...]:
        if "\0" in self.text:
            raise self.fail("a pattern cannot hold the NUL character")
        self.alternation()
        if self.i < len(self.text):
            raise self.fail("')' closes no group; write \\) for a literal parenthesis")
        return tuple(self.out)

    def alternation(self) -> None:
        self.sequence()
        while self.peek() == "|":
            self.i += 1
            self.out.append("|")
            self.sequence()

    def sequence(self) -> None:
        while (char := self.peek()) is not None and char not in "|)":
            self.quantifier(self.atom())

    def atom(self) -> bool:
        """Emit one atom; return whether a quantifier may follow it."""
        char = self.text[self.i]
        if char == "(":
            return self.group()
        if char == "[":
            self.out.append(self.char_class())
            return True
        if char in "^$":
            self.i += 1
            self.out.append("^" if char == "^" else _END)
            return False
        if char == "\\":
            found = self.escape()
            self.out.append(f"[{found}]" if isinstance(found, _Set) else found)
            return True
        if char in "*+?" or _BOUNDS.match(self.text, self.i):
            raise self.fail(f"'{char}' repeats nothing; write \\{char} for a literal '{char}'")
        if char == "{":
            raise self.fail("write \\{ for a literal '{' (a repeat is {m}, {m,} or {m,n})")
        self.i += 1
        self.out.append("." if char == "." else _escaped(char))
        return True

    def group(self) -> bool:
        if self.text.startswith("(?", self.i):
            if not self.text.startswith("(?:", self.i):
                raise self.fail(
                    "only (...) and (?:...) groups are portable; lookaround, named groups and "
                    "inline flags are not"
                )
            self.i += 3
        else:
            self.i += 1
        self.out.append("(?:")
        self.alternation()
        if self.peek() != ")":
            raise self.fail("a group is missing its ')'")
        self.i += 1
        self.out.append(")")
        return True

    def quantifier(self, allowed: bool) -> None:
        token = self.repeat()
        if token is None:
            return
        if not allowed:
            raise self.fail("an anchor (^ or $) cannot repeat")
        if self.peek() == "?":
            self.i += 1  # lazy or greedy, whether the text matches is the same
        elif self.peek() == "+":
            raise self.fail("possessive repeats (*+, ++, ?+) are not portable")
        if self.repeat() is not None:
            raise self.fail("a repeat cannot repeat; group it first, as in (?:a*)+")
        self.out.append(token)

    def repeat(self) -> str | None:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.i += 1
            return char
        match = _BOUNDS.match(self.text, self.i) if char == "{" else None
        if match is None:
            return None
        low_text, comma, high_text = match.group(1).partition(",")
        low = int(low_text or 0)
        high = int(high_text) if high_text else (None if comma else low)
        if max(low, high or 0) > MAX_REPEAT:
            raise self.fail(f"a counted repeat goes up to {MAX_REPEAT}")
        if high is not None and high < low:
            raise self.fail(f"the repeat {match.group(0)} has its bounds reversed")
        self.i = match.end()
        if high is None:
            return f"{{{low},}}"
        return f"{{{low}}}" if high == low and not comma else f"{{{low},{high}}}"

    def escape(self) -> str:
        """The escape at ``self.i``: a literal, or a _Set for \\d \\w \\s (\\D \\W \\S negate)."""
        char = self.peek(1)
        if char is None:
            raise self.fail("the pattern ends with a lone backslash; write \\\\ for a backslash")
        self.i += 2
        if char in _SETS:
            return _Set(_SETS[char])
        if char.lower() in _SETS:
            return f"[^{_SETS[char.lower()]}]"
        if char in _CONTROLS:
            return _CONTROLS[char]
        if not char.isalnum():
            return _escaped(char)
        self.i -= 2
        raise self.fail(
            f"\\{char} is not portable across SQLite, PostgreSQL and MariaDB; the escapes are "
            "\\d \\D \\w \\W \\s \\S \\t \\n \\r \\f \\v and a backslash before punctuation"
        )

    def char_class(self) -> str:
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        if self.peek() == "]":
            raise self.fail("a class cannot start with ']'; write \\] for a literal ']'")
        items: list[str] = []
        while (char := self.peek()) != "]":
            if char is None:
                raise self.fail("a class [...] is missing its ']'")
            if char == "[" and self.peek(1) in (":", ".", "="):
                raise self.fail("POSIX classes like [:alpha:] are not portable; use [A-Za-z]")
            low = self.class_atom()
            if isinstance(low, _Set):
                items.append(low)
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", None):
                self.i += 1
                high = self.class_atom()
                if isinstance(high, _Set) or len(high) != 1:
                    raise self.fail("a range ends in one character")
                if ord(high) < ord(low):
                    raise self.fail(f"the range {low}-{high} is reversed")
                items.append(f"{_escaped(low)}-{_escaped(high)}")
            else:
                items.append(_escaped(low))
        self.i += 1
        return "[" + ("^" if negated else "") + "".join(items) + "]"

    def class_atom(self) -> str:
        if self.peek() != "\\":
            char = self.text[self.i]
            self.i += 1
            return char
        found = self.escape()
        if found.startswith("[^"):
            raise self.fail("\\D, \\W and \\S cannot appear inside [...]")
        return found if isinstance(found, _Set) else found.removeprefix("\\")


def parse_regex(pattern: str) -> Regex:
    """Check ``pattern`` against the portable dialect; raise RegexError saying what to change."""
    return Regex(pattern, _Parser(pattern).parse())
