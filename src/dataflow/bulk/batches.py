"""Input rows of a bulk operation: streamed in batches, checked and coerced field by field."""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Any, NamedTuple

from dataflow.errors import ValidationError
from dataflow.models.spec import ModelSpec
from dataflow.models.types import INT64, Refused, encodable

Checker = Callable[[Any], Any]
Row = dict[str, Any]


def _in_int64(values: list[int]) -> bool:
    return min(values) >= INT64.start and max(values) < INT64.stop


def _finite(values: list[float]) -> bool:
    return all(map(math.isfinite, values))


def _text(values: list[str]) -> bool:
    return encodable("".join(values))


def _any(values: list[Any]) -> bool:
    return True


#: Field kinds whose checker returns a value of exactly this type unchanged when the test
#: beside it passes for the value's whole column; such columns skip the checker (the common
#: case, and the one that keeps big imports fast). Decimals always go through theirs.
_AS_IS: dict[str, tuple[type, Callable[[list[Any]], bool]]] = {
    "str": (str, _text),
    "int": (int, _in_int64),
    "float": (float, _finite),
    "bool": (bool, _any),
    "date": (dt.date, _any),
}


class _NeverExact:
    """A type no value has, for fields whose values always go through their checker."""


_ALWAYS_CHECK = (_NeverExact, _any)


class BadRow(Exception):
    """One input row is refused; ``index`` counts from 0 over the whole input."""

    def __init__(self, index: int, reason: str, field: str | None = None) -> None:
        super().__init__(f"row {index}: {reason}")
        self.index = index
        self.reason = reason
        self.field = field


class Checked(NamedTuple):
    """A checked batch: the good rows (coerced) with their indexes, and the bad rows."""

    rows: list[Row]
    indexes: list[int]
    bad: list[BadRow]
    #: The fields every row of the input carried, when all carried the same ones.
    fields: tuple[str, ...] | None = None


class RowChecker:
    """Checks rows of one model exactly as the single-record nodes check their fields."""

    def __init__(
        self,
        spec: ModelSpec,
        checkers: Mapping[str, Checker],
        required: Iterable[str],
        what: str = "fields",
        changes: bool = False,
    ) -> None:
        self.spec = spec
        self.required = tuple(required)
        self.what = what
        #: Whether a row must carry a field besides the required ones (an update's changes).
        self.changes = changes
        self._checks = {
            name: (*_AS_IS.get(spec.fields[name].type.name, _ALWAYS_CHECK), check)
            for name, check in checkers.items()
        }
        # Which keys a row carries decides whether it is acceptable; decide once per key set.
        self._verdicts: dict[tuple[str, ...], str | None] = {}

    def check_batch(self, start: int, raws: list[Any]) -> Checked:
        """Check a batch of raw rows, the first of which is input row ``start``.

        Rows that all carry the same fields (the usual case) are checked a column at a time,
        which keeps the per-row cost of a big import small; other batches row by row.
        """
        keys = _common_keys(raws)
        if keys is None:
            return self._one_by_one(start, raws)
        verdict = self._verdict(raws[0])
        if verdict is not None:
            return Checked([], [], [BadRow(start + p, verdict) for p in range(len(raws))])
        rows = list(map(dict.copy, raws))
        bad: dict[int, BadRow] = {}
        for name in keys:
            exact, fine, check = self._checks[name]
            values = list(map(itemgetter(name), rows))
            kinds = set(map(type, values))
            if kinds == {exact} and fine(values):
                continue
            if exact in kinds and not fine([v for v in values if type(v) is exact]):
                exact = _NeverExact  # some value is out of bounds: the checker says which
            for position, value in enumerate(values):
                if type(value) is exact or position in bad:
                    continue
                try:
                    rows[position][name] = check(value)
                except Refused as exc:
                    reason = f"field '{name}' expects {exc}"
                    bad[position] = BadRow(start + position, reason, name)
        if not bad:
            return Checked(rows, list(range(start, start + len(rows))), [], keys)
        keep = [p for p in range(len(rows)) if p not in bad]
        good = [rows[p] for p in keep]
        return Checked(good, [start + p for p in keep], [bad[p] for p in sorted(bad)], keys)

    def _one_by_one(self, start: int, raws: list[Any]) -> Checked:
        rows: list[Row] = []
        indexes: list[int] = []
        bad: list[BadRow] = []
        for index, raw in enumerate(raws, start):
            try:
                rows.append(self.check(raw, index))
            except BadRow as problem:
                bad.append(problem)
                continue
            indexes.append(index)
        return Checked(rows, indexes, bad)

    def check(self, raw: Any, index: int) -> Row:
        """One row, checked and coerced."""
        if type(raw) is not dict:
            if not isinstance(raw, Mapping):
                raise BadRow(
                    index, f"is a {type(raw).__name__}; each row is a dict of field -> value"
                )
            raw = dict(raw)
        verdict = self._verdict(raw)
        if verdict is not None:
            raise BadRow(index, verdict)
        checks = self._checks
        row = {}
        for name, value in raw.items():
            exact, fine, check = checks[name]
            if type(value) is not exact or not fine([value]):
                try:
                    value = check(value)
                except Refused as exc:
                    raise BadRow(index, f"field '{name}' expects {exc}", name) from None
            row[name] = value
        return row

    def _verdict(self, raw: Row) -> str | None:
        """What is wrong with the set of fields a row carries, if anything."""
        keys = tuple(raw)
        verdict = self._verdicts.get(keys, "")
        if verdict == "":
            verdict = self._verdicts[keys] = self._judge(raw)
        return verdict

    def _judge(self, raw: Row) -> str | None:
        for name in raw:
            if name not in self._checks:
                known = list(self._checks)
                hint = difflib.get_close_matches(str(name), known, n=1)
                extra = f" Did you mean '{hint[0]}'?" if hint else ""
                return (
                    f"unknown field '{name}'.{extra} {self.spec.name} rows take the "
                    f"{self.what}: {', '.join(known)}"
                )
        missing = [name for name in self.required if name not in raw]
        if missing:
            return f"missing required field(s) {', '.join(missing)}"
        if self.changes and len(raw) == len(self.required):
            return f"nothing to change besides {', '.join(self.required)}"
        return None


def _common_keys(raws: list[Any]) -> tuple[str, ...] | None:
    """The keys every row carries when all rows are dicts with the same keys, else None."""
    try:
        first = raws[0].keys()
        if all(map(first.__eq__, map(dict.keys, raws))):
            return tuple(first)
    except (TypeError, AttributeError):  # a row that is not a dict
        pass
    return None


def chunks(source: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    """Lists of at most ``size`` items pulled lazily from ``source``, each with its start."""
    items = iter(source)
    start = 0
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield start, chunk
        start += len(chunk)


def key_values(rows: list[Row], keys: tuple[str, ...]) -> list[Any]:
    """Each row's key (a value, or a tuple for several fields); None where any part is None."""
    columns = [list(map(dict.get, rows, itertools.repeat(k))) for k in keys]
    if len(columns) == 1:
        return columns[0]
    return [None if None in key else key for key in zip(*columns, strict=True)]


def key_order(found: list[Any]) -> list[int] | None:
    """Positions of ``found`` (keys, none None) in ascending order; None if already so.

    Concurrent writers that lock rows in one order cannot deadlock on them; the sort is
    stable, so a key repeated in a batch still applies in input order.
    """
    try:
        if all(a <= b for a, b in itertools.pairwise(found)):
            return None
        return sorted(range(len(found)), key=found.__getitem__)
    except TypeError:  # keys without an order between them: left as given
        return None


def split_on_repeats(
    rows: list[Row], indexes: list[int], keys: tuple[str, ...]
) -> Iterator[tuple[list[Row], list[int]]]:
    """Cut a batch before any row whose key already occurs in it.

    Set-based statements see a batch all at once; a repeated key inside one would be
    ambiguous. Cut this way, a later row with the same key applies after the earlier one, as
    if the rows were written one by one.
    """
    found = key_values(rows, keys)
    present = [key for key in found if key is not None]
    if len(set(present)) == len(present):
        yield rows, indexes
        return
    seen: set[Any] = set()
    start = 0
    for i, key in enumerate(found):
        if key is None:
            continue  # NULL keys never match a row, so they never clash
        if key in seen:
            yield rows[start:i], indexes[start:i]
            start = i
            seen.clear()
        seen.add(key)
    yield rows[start:], indexes[start:]


class Progress:
    """Reports rows done after each batch: to a callable, or as a tqdm bar."""

    def __init__(
        self, option: bool | Callable[[int, int | None], Any], total: int | None, label: str
    ) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._call: Callable[[int, int | None], Any] | None = None
        if option is True:
            try:
                from tqdm import tqdm
            except ImportError as exc:
                raise ValidationError(
                    f"{label}: progress=True draws a bar with tqdm, which is not installed: "
                    "pip install 'dataflow-workflows[progress]', or pass a callable instead"
                ) from exc
            self._bar = tqdm(total=total, unit="rows", desc=label)
        elif callable(option):
            self._call = option

    def advance(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        if self._call is not None:
            self._call(self.done, self.total)

    def rewind(self, done: int) -> None:
        """Go back to ``done`` rows: the rows since are to be written again."""
        self.done = done
        if self._bar is not None:
            self._bar.n = done
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def grouped(
    rows: list[Row], indexes: list[int], kinds: list[Any]
) -> Iterator[tuple[Any, list[Row], list[int]]]:
    """``(kind, rows, indexes)`` for each kind of row (one kind per row), in row order."""
    if not rows:
        return
    first = kinds[0]
    if kinds.count(first) == len(kinds):
        yield first, rows, indexes
        return
    groups: dict[Any, tuple[list[Row], list[int]]] = {}
    for row, index, kind in zip(rows, indexes, kinds, strict=True):
        group = groups.setdefault(kind, ([], []))
        group[0].append(row)
        group[1].append(index)
    for kind, (group_rows, group_indexes) in groups.items():
        yield kind, group_rows, group_indexes
