"""The one filter parser: the subset of Google AIP-160 that List, SearchSimilar and datasets use.

Grammar (keywords are upper case; whitespace is space, tab, CR or LF)::

    filter      = [ expression ]                    empty or blank text: no filter (None)
    expression  = factor { [ "AND" ] factor }       two terms side by side also mean AND
    factor      = term { "OR" term }
    term        = { "NOT" | "-" } simple
    simple      = comparison | "(" expression ")"
    comparison  = FIELD OP VALUE
    FIELD       = NAME { "." NAME }                 NAME = [A-Za-z_][A-Za-z0-9_]*, case-sensitive
    OP          = "=" | "!=" | "<" | "<=" | ">" | ">="
    VALUE       = STRING | NUMBER | "true" | "false" | "null" | NAME
    STRING      = '"' ... '"' | "'" ... "'"         escapes: \\ \" \' (no others)
    NUMBER      = [ "-" ] DIGITS [ "." DIGITS ] [ ("e" | "E") [ "+" | "-" ] DIGITS ]

Precedence, as AIP-160 defines it and unlike most languages: NOT and "-" bind tightest, then
**OR binds tighter than AND**. So `a = 1 AND b = 2 OR c = 3` means `a = 1 AND (b = 2 OR c = 3)`;
write parentheses when you mean `(a = 1 AND b = 2) OR c = 3`.

Not supported from AIP-160: the has operator `:`, wildcards (`*` in a string is a literal
character), functions, and comparisons without an operator (free-text search).

Values are checked against the field's declared type (`FilterSchema`), strictly, because a clear
error beats a filter that silently matches nothing:

- STRING: a quoted string only. `validated_by = alice` and `category = 42` are refused with a
  hint to quote the value. Only `=` and `!=`: ordering strings depends on collation, which
  differs between Postgres, Qdrant and Python.
- INTEGER: an integer literal within the signed 64-bit range; `1.5`, `1.0` and `1e3` are refused.
- NUMBER: any finite number literal; integers become floats.
- BOOL: `true` or `false` (lower case), with `=` or `!=` only.
- TIMESTAMP: a quoted RFC 3339 timestamp with a UTC offset (`"2026-01-01T00:00:00Z"`), parsed to
  an aware datetime in UTC. At most microsecond precision (extra fractional digits must be 0).
- ENUM: one of the declared values, quoted or bare (`split = train`), with `=` or `!=` only.
- `null`: only with `=` or `!=`, and only for fields declared nullable.

Meaning, as `evaluate` defines it (SQL and Qdrant translations must agree with it): every
comparison is either true or false. A comparison with a missing or null field is false, except
`field = null`, which is true. NOT negates that result, so `NOT category = "cat"` matches records
without a category while `category != "cat"` does not.

Limits: at most 4096 characters, 32 levels of nesting (each parenthesis and each NOT or "-"
counts), 256 comparisons. Every problem raises `FilterError` with the position (0-based
character offset) where it is.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any, TypeAlias

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.storable_text import unstorable_character

__all__ = [
    "MAX_COMPARISONS",
    "MAX_FILTER_LENGTH",
    "MAX_NESTING_DEPTH",
    "And",
    "Comparison",
    "Expr",
    "FieldType",
    "FilterError",
    "FilterField",
    "FilterSchema",
    "Not",
    "Op",
    "Or",
    "Value",
    "evaluate",
    "fields_used",
    "format_filter",
    "parse_filter",
]

MAX_FILTER_LENGTH = 4096
MAX_NESTING_DEPTH = 32
MAX_COMPARISONS = 256

# Postgres stores INTEGER fields as bigint; a larger literal could never match and would fail in
# SQL rather than here.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER_RE = re.compile(r"-?[0-9]+")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DIGITS = frozenset("0123456789")
_WHITESPACE = frozenset(" \t\r\n")
_ESCAPABLE = frozenset("\\\"'")
_TIMESTAMP_RE = re.compile(
    # [0-9], not \d: \d also matches digits of other scripts.
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)
_TIMESTAMP_EXAMPLE = '"2026-01-01T00:00:00Z"'


# --- Schema -------------------------------------------------------------------------------------


class FieldType(Enum):
    """The type of a filterable field; it decides which values and operators are accepted."""

    STRING = "STRING"
    INTEGER = "INTEGER"
    NUMBER = "NUMBER"  # a float
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"
    ENUM = "ENUM"


class Op(Enum):
    """A comparison operator; the value is its spelling in a filter."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


_ORDERED_TYPES = frozenset({FieldType.INTEGER, FieldType.NUMBER, FieldType.TIMESTAMP})
_EQUALITY_OPS = frozenset({Op.EQ, Op.NE})


@dataclass(frozen=True)
class FilterField:
    """One field a filter may name. `aliases` are other accepted spellings of the same field;
    the parsed expression always carries `name`."""

    name: str
    type: FieldType
    enum_values: frozenset[str] = frozenset()
    nullable: bool = False
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A schema is written by us, not by users: mistakes here are bugs, hence ValueError.
        for name in (self.name, *self.aliases):
            if _NAME_RE.fullmatch(name) is None or name in _KEYWORDS:
                raise ValueError(f"{name!r} cannot be a filter field name")
        if (self.type is FieldType.ENUM) != bool(self.enum_values):
            raise ValueError(f"field {self.name!r}: enum_values are required for ENUM fields only")


class FilterSchema(Mapping[str, FilterField]):
    """The fields one method accepts in its filter, keyed by canonical name."""

    def __init__(self, fields: Iterable[FilterField]) -> None:
        self._fields: dict[str, FilterField] = {}
        self._by_spelling: dict[str, FilterField] = {}
        for item in fields:
            for spelling in (item.name, *item.aliases):
                if spelling in self._by_spelling:
                    raise ValueError(f"filter field name {spelling!r} is declared twice")
                self._by_spelling[spelling] = item
            self._fields[item.name] = item

    def __getitem__(self, name: str) -> FilterField:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"FilterSchema({list(self._fields.values())!r})"

    def resolve(self, spelling: str) -> FilterField | None:
        """The field a name or alias refers to, or None when the schema has no such field."""
        return self._by_spelling.get(spelling)

    def spellings(self) -> list[str]:
        """Every accepted name and alias, for suggestions."""
        return list(self._by_spelling)


# --- Expressions --------------------------------------------------------------------------------

Value: TypeAlias = str | int | float | bool | datetime | None


@dataclass(frozen=True)
class Comparison:
    """`field op value`; `value` already has the field's type (None stands for null)."""

    field: str
    op: Op
    value: Value


@dataclass(frozen=True)
class And:
    """All terms hold. The parser yields at least two terms, none of them an And."""

    terms: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """At least one term holds. The parser yields at least two terms, none of them an Or."""

    terms: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    """The term does not hold."""

    term: Expr


Expr: TypeAlias = Comparison | And | Or | Not


# --- Errors -------------------------------------------------------------------------------------


class FilterError(InvalidArgument):
    """A filter that cannot be parsed or does not fit its schema.

    `summary` is one line ending in the position; `message` adds the text around the position
    with a caret under it, for people reading it in a terminal.
    """

    def __init__(self, summary: str, *, position: int, text: str = "") -> None:
        message = summary + "\n" + _excerpt(text, position) if text else summary
        super().__init__(
            message,
            field="filter",
            reason="INVALID_FILTER",
            metadata={"position": str(position)},
        )
        self.summary = summary
        self.position = position


def _error(text: str, what: str, position: int, detail: str = "") -> FilterError:
    """The one shape of every message: what is wrong, where, then how to fix it if we know."""
    return FilterError(
        f"filter: {what} at position {position}{detail}", position=position, text=text
    )


def _excerpt(text: str, position: int, width: int = 60) -> str:
    """Two lines: up to `width` characters of `text` around `position`, and a caret under it."""
    start = max(0, min(position - width // 2, len(text) - width))
    end = min(len(text), start + width)
    before = "..." if start > 0 else ""
    after = "..." if end < len(text) else ""
    # One column per character, so the caret lines up: tabs, newlines and the like become spaces.
    shown = "".join(c if c.isprintable() else " " for c in text[start:end])
    return f"  {before}{shown}{after}\n  {' ' * (len(before) + position - start)}^"


# --- Tokens -------------------------------------------------------------------------------------


class _Kind(Enum):
    LPAREN = "("
    RPAREN = ")"
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    MINUS = "-"
    OP = "operator"
    STRING = "string"
    NUMBER = "number"
    NAME = "name"
    END = "end"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    position: int
    text: str  # as written, quotes included
    value: str = ""  # a STRING's content with escapes resolved


# Characters people bring from other languages, with what to write instead.
_CHARACTER_HINTS = {
    "&": "; use AND to combine comparisons",
    "|": "; use OR to combine comparisons",
    "!": '; use "!=" to compare or NOT to negate',
    ":": '; the ":" (has) operator is not supported, use "="',
}


class _Tokenizer:
    def __init__(self, text: str) -> None:
        self._text = text

    def _fail(self, what: str, position: int, detail: str = "") -> FilterError:
        return _error(self._text, what, position, detail)

    def tokens(self) -> list[_Token]:
        text = self._text
        found: list[_Token] = []
        i = 0
        while i < len(text):
            c = text[i]
            if c in _WHITESPACE:
                i += 1
            elif c == "(":
                found.append(_Token(_Kind.LPAREN, i, c))
                i += 1
            elif c == ")":
                found.append(_Token(_Kind.RPAREN, i, c))
                i += 1
            elif c in "\"'":
                token = self._string(i)
                found.append(token)
                i += len(token.text)
            elif c in _DIGITS or (c == "-" and text[i + 1 : i + 2] in _DIGITS):
                token = self._number(i)
                found.append(token)
                i += len(token.text)
            elif c == "-":
                found.append(_Token(_Kind.MINUS, i, c))
                i += 1
            elif c in "=!<>":
                token = self._operator(i)
                found.append(token)
                i += len(token.text)
            elif c in _NAME_CHARS:  # digits were taken above, so this starts a name
                token = self._name(i)
                found.append(token)
                i += len(token.text)
            else:
                raise self._fail(
                    f'unexpected character "{_printable(c)}"', i, _CHARACTER_HINTS.get(c, "")
                )
        found.append(_Token(_Kind.END, len(text), ""))
        return found

    def _string(self, start: int) -> _Token:
        text = self._text
        quote = text[start]
        content: list[str] = []
        i = start + 1
        while i < len(text) and text[i] != quote:
            if text[i] == "\\" and i + 1 < len(text):
                if text[i + 1] not in _ESCAPABLE:
                    raise self._fail(
                        f'invalid escape "{_printable(text[i : i + 2])}"',
                        i,
                        r"; only \\, \" and \' are escapes (write \\ for a backslash)",
                    )
                i += 1
            content.append(text[i])
            i += 1
        if i >= len(text):
            raise self._fail("unterminated string starting", start)
        # String values reach Postgres as parameters, which cannot hold these (outside a
        # string they are unexpected characters anyway).
        unstorable = unstorable_character(text[start : i + 1])
        if unstorable is not None:
            offset, what = unstorable
            raise self._fail(
                f"{what} in a string",
                start + offset,
                "; strings cannot hold NUL or lone surrogates",
            )
        return _Token(_Kind.STRING, start, text[start : i + 1], "".join(content))

    def _number(self, start: int) -> _Token:
        match = _NUMBER_RE.match(self._text, start)
        assert match is not None  # the caller saw a digit, possibly after "-"
        end = match.end()
        if end < len(self._text) and (self._text[end] in _NAME_CHARS or self._text[end] == "."):
            raise self._fail("malformed number", start)
        return _Token(_Kind.NUMBER, start, match.group())

    def _operator(self, start: int) -> _Token:
        pair = self._text[start : start + 2]
        if pair == "==":
            raise self._fail('"==" is not an operator', start, '; use "=" to compare')
        if pair in ("!=", "<=", ">="):
            return _Token(_Kind.OP, start, pair)
        if pair[0] == "!":
            raise self._fail('unexpected character "!"', start, _CHARACTER_HINTS["!"])
        return _Token(_Kind.OP, start, pair[0])

    def _name(self, start: int) -> _Token:
        match = _NAME_RE.match(self._text, start)
        assert match is not None  # the caller saw a letter or "_"
        end = match.end()
        if self._text[end : end + 1] == ".":
            raise self._fail('expected a name after "."', end + 1)
        word = match.group()
        kind = _Kind(word) if word in _KEYWORDS else _Kind.NAME
        return _Token(kind, start, word)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _quote(text: str) -> str:
    """`text` in double quotes, escaped as the filter syntax escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _describe(token: _Token) -> str:
    if token.kind is _Kind.END:
        return "the end of the filter"
    shown = _printable(token.text)
    if len(shown) > 30:
        shown = shown[:27] + "..."
    # A string shows its own quotes; anything else gets some.
    return shown if token.kind is _Kind.STRING else f'"{shown}"'


# --- Parser -------------------------------------------------------------------------------------


_WANTS_COMPARISON = frozenset({_Kind.AND, _Kind.OR, _Kind.NOT, _Kind.MINUS, _Kind.LPAREN})


class _Parser:
    """Recursive descent, one method per grammar rule. Recursion is bounded by the nesting
    limit, checked before each descent, so hostile input cannot exhaust the stack."""

    def __init__(self, text: str, tokens: list[_Token], schema: FilterSchema) -> None:
        self._text = text
        self._tokens = tokens
        self._schema = schema
        self._next = 0
        self._depth = 0
        self._comparisons = 0

    def _fail(self, what: str, position: int, detail: str = "") -> FilterError:
        return _error(self._text, what, position, detail)

    def _peek(self) -> _Token:
        return self._tokens[self._next]

    def _take(self) -> _Token:
        token = self._tokens[self._next]
        self._next += 1
        return token

    def _descend(self, token: _Token) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING_DEPTH:
            raise self._fail(
                f"nesting deeper than {MAX_NESTING_DEPTH} levels",
                token.position,
                ' (each "(", NOT and "-" adds a level)',
            )

    def parse(self) -> Expr:
        expr = self._expression()
        token = self._peek()
        if token.kind is _Kind.RPAREN:
            raise self._fail('unmatched ")"', token.position)
        return expr

    def _expression(self) -> Expr:
        terms = [self._factor()]
        while True:
            token = self._peek()
            if token.kind in (_Kind.END, _Kind.RPAREN):
                return _combine(And, terms)
            if token.kind is _Kind.AND:
                self._take()
            terms.append(self._factor())  # without AND: a sequence, which also means AND

    def _factor(self) -> Expr:
        terms = [self._term()]
        while self._peek().kind is _Kind.OR:
            self._take()
            terms.append(self._term())
        return _combine(Or, terms)

    def _term(self) -> Expr:
        token = self._peek()
        if token.kind in (_Kind.NOT, _Kind.MINUS):
            self._take()
            self._descend(token)
            term = Not(self._term())
            self._depth -= 1
            return term
        if token.kind is _Kind.LPAREN:
            self._take()
            self._descend(token)
            inner = self._expression()
            if self._peek().kind is not _Kind.RPAREN:  # the expression ran to the end
                raise self._fail('"(" is never closed', token.position)
            self._take()
            self._depth -= 1
            return inner
        if token.kind is _Kind.NAME:
            return self._comparison()
        # Name the keyword or "(" that wanted a comparison, when there is one.
        before = self._tokens[self._next - 1] if self._next else None
        after = ""
        if before is not None and before.kind in _WANTS_COMPARISON:
            after = f" after {_quote(before.text)}"
        raise self._fail(f"expected a comparison{after}, found {_describe(token)}", token.position)

    def _comparison(self) -> Comparison:
        name_token = self._take()
        name = name_token.text
        target = self._schema.resolve(name)
        if target is None:
            raise self._unknown_field(name_token)
        self._comparisons += 1
        if self._comparisons > MAX_COMPARISONS:
            raise self._fail(f"more than {MAX_COMPARISONS} comparisons", name_token.position)

        op_token = self._peek()
        if op_token.kind is not _Kind.OP:
            raise self._fail(
                f"expected an operator (=, !=, <, <=, >, >=) after {_quote(name)}, "
                f"found {_describe(op_token)}",
                op_token.position,
            )
        self._take()
        op = Op(op_token.text)
        if op not in _EQUALITY_OPS and target.type not in _ORDERED_TYPES:
            raise self._fail(
                f"field {_quote(name)} is {target.type.name}; operator {_quote(op.value)} "
                "is not allowed",
                op_token.position,
                ' (use "=" or "!=")',
            )

        value_token = self._peek()
        if value_token.kind not in (_Kind.STRING, _Kind.NUMBER, _Kind.NAME):
            raise self._fail(
                f"expected a value after {_quote(op.value)}, found {_describe(value_token)}",
                value_token.position,
            )
        self._take()
        return Comparison(target.name, op, self._value(target, name, op, value_token))

    def _unknown_field(self, token: _Token) -> FilterError:
        name = token.text
        if name.upper() in _KEYWORDS:
            return self._fail(
                f"unknown field {_quote(name)}",
                token.position,
                f"; keywords are upper case: write {name.upper()}",
            )
        close = difflib.get_close_matches(name, self._schema.spellings(), n=1)
        suggestion = f"; did you mean {_quote(close[0])}?" if close else ""
        known = ", ".join(sorted(self._schema))
        return self._fail(
            f"unknown field {_quote(name)}", token.position, f"{suggestion} (known: {known})"
        )

    def _value(self, target: FilterField, name: str, op: Op, token: _Token) -> Value:
        """The literal in `token` as a value of the field's type, or a FilterError saying why
        it cannot be one. `name` is the field as the user spelled it."""
        position = token.position
        kind = token.kind
        if kind is _Kind.NAME and token.text == "null":
            if op not in _EQUALITY_OPS:
                raise self._fail('null can only be compared with "=" or "!="', position)
            if not target.nullable:
                raise self._fail(f"field {_quote(name)} is never null", position)
            return None

        def wrong(expected: str) -> FilterError:
            return self._fail(
                f"field {_quote(name)} is {target.type.name}; expected {expected}, "
                f"found {_describe(token)}",
                position,
            )

        match target.type:
            case FieldType.STRING:
                if kind is _Kind.STRING:
                    return token.value
                raise self._fail(
                    f"field {_quote(name)} is STRING; expected a quoted string, "
                    f"found {_describe(token)}",
                    position,
                    f"; write {_quote(token.text)}",
                )
            case FieldType.BOOL:
                if kind is _Kind.NAME and token.text in ("true", "false"):
                    return token.text == "true"
                raise wrong("true or false")
            case FieldType.INTEGER:
                if kind is not _Kind.NUMBER:
                    raise wrong("an integer")
                if _INTEGER_RE.fullmatch(token.text) is None:
                    raise wrong("an integer")
                number = int(token.text)
                if not _INT64_MIN <= number <= _INT64_MAX:
                    raise self._fail(f"integer {token.text} is out of range", position)
                return number
            case FieldType.NUMBER:
                if kind is not _Kind.NUMBER:
                    raise wrong("a number")
                real = float(token.text)  # never raises: the token matched _NUMBER_RE
                if not math.isfinite(real):
                    raise self._fail(f"number {token.text} is out of range", position)
                return real
            case FieldType.TIMESTAMP:
                if kind is not _Kind.STRING:
                    raise wrong(f"a quoted RFC 3339 timestamp such as {_TIMESTAMP_EXAMPLE}")
                try:
                    return _parse_timestamp(token.value)
                except ValueError as error:
                    raise self._fail(str(error), position) from None
            # No fall-through: mypy checks that every FieldType has a case.
            case FieldType.ENUM:  # pragma: no branch
                allowed = ", ".join(sorted(target.enum_values))
                if kind is _Kind.NUMBER:
                    raise wrong(f"one of {allowed}")
                text = token.value if kind is _Kind.STRING else token.text
                if text not in target.enum_values:
                    raise self._fail(
                        f"{_quote(text)} is not a value of field {_quote(name)}",
                        position,
                        f" (allowed: {allowed})",
                    )
                return text


def _combine(kind: type[And] | type[Or], terms: list[Expr]) -> Expr:
    """One term as itself, several as `kind`, with terms of the same kind merged into it."""
    if len(terms) == 1:
        return terms[0]
    flat: list[Expr] = []
    for term in terms:
        if isinstance(term, kind):
            flat.extend(term.terms)
        else:
            flat.append(term)
    return kind(tuple(flat))


def _parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime in UTC; ValueError says what is wrong."""
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{_quote(text)} is not an RFC 3339 timestamp such as {_TIMESTAMP_EXAMPLE}"
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu is None and sign is None:
        # Guessing the server's zone would make the same filter mean different things.
        raise ValueError(
            f'timestamp {_quote(text)} has no UTC offset; add "Z" or an offset such as "+02:00"'
        )
    fraction = fraction or ""
    # Postgres keeps microseconds; dropping non-zero digits would change which rows match.
    if fraction[6:].strip("0"):
        raise ValueError(f"timestamp {_quote(text)} is more precise than a microsecond")
    zone = UTC
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(f"timestamp {_quote(text)} has an invalid UTC offset")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-offset if sign == "-" else offset)
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(fraction[:6].ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError as error:
        raise ValueError(
            f"timestamp {_quote(text)} is not a valid date and time ({error})"
        ) from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. year 1 at +01:00 is before the first moment datetime holds
        raise ValueError(f"timestamp {_quote(text)} is out of range") from None


# --- Public functions ---------------------------------------------------------------------------


def parse_filter(text: str, schema: FilterSchema) -> Expr | None:
    """The filter `text` as a typed expression over the fields of `schema`.

    Returns None for an empty or blank filter (no filter); raises FilterError for anything it
    cannot read or that does not fit the schema, with the position of the problem.
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise _error(
            text,
            f"longer than {MAX_FILTER_LENGTH} characters",
            MAX_FILTER_LENGTH,
            f" (the filter has {len(text)})",
        )
    tokens = _Tokenizer(text).tokens()
    if tokens[0].kind is _Kind.END:
        return None
    return _Parser(text, tokens, schema).parse()


# Any: the operands are of one kind (checked by _kind_of), which the types cannot express.
_COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}


def evaluate(expr: Expr | None, record: Mapping[str, object]) -> bool:
    """Whether `record` (field name to value; dotted names are flat keys) matches `expr`.

    No expression matches everything. A missing key and None both mean null: `field = null`
    holds for them, every other comparison is false (see the module docstring). A record value
    of another kind than the filter's value (a string where a number is expected, a naive
    datetime) raises TypeError: the caller built the record wrong, and guessing would hide it.
    """
    if expr is None:
        return True
    if isinstance(expr, Comparison):
        return _evaluate_comparison(expr, record)
    if isinstance(expr, And):
        return all(evaluate(term, record) for term in expr.terms)
    if isinstance(expr, Or):
        return any(evaluate(term, record) for term in expr.terms)
    if isinstance(expr, Not):
        return not evaluate(expr.term, record)
    raise TypeError(f"not a filter expression: {expr!r}")


def _evaluate_comparison(comparison: Comparison, record: Mapping[str, object]) -> bool:
    actual = record.get(comparison.field)
    expected = comparison.value
    if expected is None:
        if comparison.op not in _EQUALITY_OPS:
            raise ValueError(f"null can only be compared with = or !=: {comparison!r}")
        return (actual is None) == (comparison.op is Op.EQ)
    if actual is None:
        return False
    kind = _kind_of(expected)
    if kind is None or _kind_of(actual) is not kind:
        raise TypeError(
            f"record field {comparison.field!r} holds {actual!r}, which cannot be compared "
            f"with {expected!r}"
        )
    return _COMPARE[comparison.op](actual, expected)


def _kind_of(value: object) -> type | None:
    """Which values compare with which, or None for a value no filter holds.

    Stricter than Python: bool is not a number, and a naive datetime (which Python silently
    finds unequal to every aware one) compares with nothing.
    """
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return datetime
    return None


def fields_used(expr: Expr | None) -> frozenset[str]:
    """The canonical names of every field `expr` compares."""
    found: set[str] = set()
    pending: list[Expr] = [] if expr is None else [expr]
    while pending:
        item = pending.pop()
        if isinstance(item, Comparison):
            found.add(item.field)
        elif isinstance(item, And | Or):
            pending.extend(item.terms)
        else:
            pending.append(item.term)
    return frozenset(found)


def format_filter(expr: Expr | None) -> str:
    """`expr` as filter text that parses back to an equal expression ("" for no filter).

    AND groups that contain OR get parentheses they do not need, because readers expect AND to
    bind tighter.
    """
    if expr is None:
        return ""
    if isinstance(expr, Comparison):
        return f"{expr.field} {expr.op.value} {_format_value(expr.value)}"
    if isinstance(expr, And | Or):
        keyword = " AND " if isinstance(expr, And) else " OR "
        return keyword.join(_format_operand(term) for term in expr.terms)
    return "NOT " + _format_operand(expr.term)


def _format_operand(expr: Expr) -> str:
    text = format_filter(expr)
    return f"({text})" if isinstance(expr, And | Or) else text


def _format_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a filter cannot hold the number {value!r}")
        return repr(value)
    if isinstance(value, datetime):
        return _quote(value.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    return _quote(value)
