"""Tests for the AIP-160 filter parser, its evaluator and its formatter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agentic_labeling.errors import FieldViolation, InvalidArgument
from agentic_labeling.registry.query.filtering import (
    MAX_COMPARISONS,
    MAX_FILTER_LENGTH,
    MAX_NESTING_DEPTH,
    And,
    Comparison,
    Expr,
    FieldType,
    FilterError,
    FilterField,
    FilterSchema,
    Not,
    Op,
    Or,
    evaluate,
    fields_used,
    format_filter,
    parse_filter,
)

# An example of what a List method declares: the object fields of ObjectService.ListObjects.
SCHEMA = FilterSchema(
    [
        FilterField("category", FieldType.STRING),
        FilterField("confidence", FieldType.NUMBER),
        FilterField("quality_score", FieldType.NUMBER, nullable=True),
        FilterField("is_validated", FieldType.BOOL),
        FilterField("create_time", FieldType.TIMESTAMP, aliases=("created_at",)),
        FilterField("validated_at", FieldType.TIMESTAMP, nullable=True),
        FilterField("validated_by", FieldType.STRING, nullable=True),
        FilterField("source", FieldType.STRING),
        FilterField("model", FieldType.STRING),
        FilterField("track", FieldType.STRING, nullable=True),
        FilterField("frame", FieldType.INTEGER),
        FilterField("bbox.width", FieldType.INTEGER),
        FilterField(
            "split", FieldType.ENUM, enum_values=frozenset({"train", "val", "test"}), nullable=True
        ),
    ]
)

CAT = Comparison("category", Op.EQ, "cat")
DOG = Comparison("category", Op.EQ, "dog")
VALIDATED = Comparison("is_validated", Op.EQ, True)
CONFIDENT = Comparison("confidence", Op.GE, 0.5)


def parse(text: str) -> Expr | None:
    return parse_filter(text, SCHEMA)


def error_of(text: str) -> FilterError:
    with pytest.raises(FilterError) as caught:
        parse(text)
    return caught.value


# --- Basics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\t\r\n  "])
def test_empty_or_blank_filter_means_no_filter(text: str) -> None:
    assert parse(text) is None


def test_single_comparison_parses_to_a_comparison() -> None:
    assert parse('category = "cat"') == CAT


def test_example_from_the_api_parses_to_one_flat_and() -> None:
    text = (
        'category = "cat" AND confidence >= 0.5 AND is_validated = false '
        'AND create_time > "2026-01-01T00:00:00Z"'
    )
    assert parse(text) == And(
        (
            CAT,
            CONFIDENT,
            Comparison("is_validated", Op.EQ, False),
            Comparison("create_time", Op.GT, datetime(2026, 1, 1, tzinfo=UTC)),
        )
    )


@pytest.mark.parametrize(
    ("symbol", "op"),
    [("=", Op.EQ), ("!=", Op.NE), ("<", Op.LT), ("<=", Op.LE), (">", Op.GT), (">=", Op.GE)],
)
def test_each_operator_parses_to_its_op(symbol: str, op: Op) -> None:
    assert parse(f"frame {symbol} 3") == Comparison("frame", op, 3)


def test_operators_need_no_spaces_around_them() -> None:
    assert parse("confidence>=0.5") == CONFIDENT


def test_dotted_field_name_is_one_field() -> None:
    assert parse("bbox.width > 10") == Comparison("bbox.width", Op.GT, 10)


def test_alias_resolves_to_the_canonical_field_name() -> None:
    assert parse('created_at < "2026-01-01T00:00:00Z"') == Comparison(
        "create_time", Op.LT, datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_field_names_are_case_sensitive() -> None:
    assert error_of('Category = "cat"').summary.startswith('filter: unknown field "Category"')


def test_whitespace_may_be_tabs_and_newlines() -> None:
    assert parse('category\t=\n"cat"\r\nAND confidence >= 0.5') == And((CAT, CONFIDENT))


# --- Precedence ---------------------------------------------------------------------------------


def test_or_binds_tighter_than_and() -> None:
    text = 'category = "cat" AND confidence >= 0.5 OR is_validated = true'
    assert parse(text) == And((CAT, Or((CONFIDENT, VALIDATED))))


def test_or_binds_tighter_than_and_when_or_comes_first() -> None:
    text = 'category = "cat" OR category = "dog" AND is_validated = true'
    assert parse(text) == And((Or((CAT, DOG)), VALIDATED))


def test_parentheses_override_precedence() -> None:
    text = '(category = "cat" AND confidence >= 0.5) OR is_validated = true'
    assert parse(text) == Or((And((CAT, CONFIDENT)), VALIDATED))


def test_adjacent_terms_mean_and() -> None:
    assert parse('category = "cat" confidence >= 0.5') == parse(
        'category = "cat" AND confidence >= 0.5'
    )


def test_adjacent_terms_bind_looser_than_or() -> None:
    text = 'category = "cat" confidence >= 0.5 OR is_validated = true'
    assert parse(text) == And((CAT, Or((CONFIDENT, VALIDATED))))


def test_adjacent_terms_need_no_space_after_a_string() -> None:
    assert parse('category="cat"is_validated=true') == And((CAT, VALIDATED))


def test_not_binds_tighter_than_or() -> None:
    assert parse('NOT category = "cat" OR is_validated = true') == Or((Not(CAT), VALIDATED))


def test_not_applies_to_a_parenthesized_group() -> None:
    text = '(category = "cat" OR category = "dog") AND NOT is_validated = true'
    assert parse(text) == And((Or((CAT, DOG)), Not(VALIDATED)))


def test_not_needs_no_space_before_a_parenthesis() -> None:
    assert parse('NOT(category = "cat")') == Not(CAT)


def test_minus_prefix_means_not() -> None:
    assert parse('-source = "sources/0b6e"') == Not(Comparison("source", Op.EQ, "sources/0b6e"))


def test_minus_prefix_negates_a_parenthesized_group() -> None:
    assert parse('-(category = "cat" OR category = "dog")') == Not(Or((CAT, DOG)))


def test_minus_prefix_in_a_sequence_negates_only_its_term() -> None:
    assert parse('category = "cat" -is_validated = true') == And((CAT, Not(VALIDATED)))


def test_double_negation_is_kept_as_written() -> None:
    assert parse('NOT -category = "cat"') == Not(Not(CAT))


def test_nested_ands_are_flattened() -> None:
    text = 'category = "cat" AND (confidence >= 0.5 AND (is_validated = true))'
    assert parse(text) == And((CAT, CONFIDENT, VALIDATED))


def test_nested_ors_are_flattened() -> None:
    text = '(category = "cat" OR category = "dog") OR is_validated = true'
    assert parse(text) == Or((CAT, DOG, VALIDATED))


def test_and_inside_or_is_not_flattened() -> None:
    text = '(category = "cat" AND is_validated = true) OR category = "dog"'
    assert parse(text) == Or((And((CAT, VALIDATED)), DOG))


def test_redundant_parentheses_are_dropped() -> None:
    assert parse('((category = "cat"))') == CAT


@pytest.mark.parametrize("keyword", ["and", "or", "Not"])
def test_keywords_in_lower_case_are_refused_with_a_hint(keyword: str) -> None:
    text = f'category = "cat" {keyword} is_validated = true'
    error = error_of(text)
    assert error.position == 17
    assert error.summary == (
        f'filter: unknown field "{keyword}" at position 17; '
        f"keywords are upper case: write {keyword.upper()}"
    )


# --- Values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"cat"', "cat"),
        ("'cat'", "cat"),
        ('""', ""),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'it\'s'", "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        (r'"C:\\data"', "C:\\data"),
        ('"chat noir é"', "chat noir é"),
        ('"c*t"', "c*t"),
        ('"cat AND dog"', "cat AND dog"),
        ('"42"', "42"),
        ('"null"', "null"),
    ],
)
def test_string_literals_decode_quotes_and_escapes(literal: str, value: str) -> None:
    assert parse(f"category = {literal}") == Comparison("category", Op.EQ, value)


@pytest.mark.parametrize(
    ("literal", "found"), [("42", '"42"'), ("alice", '"alice"'), ("true", '"true"')]
)
def test_string_field_refuses_unquoted_values_and_shows_the_quoted_form(
    literal: str, found: str
) -> None:
    error = error_of(f"validated_by = {literal}")
    assert error.position == 15
    assert error.summary == (
        f'filter: field "validated_by" is STRING; expected a quoted string, found {found} '
        f'at position 15; write "{literal}"'
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0.5", 0.5),
        ("1", 1.0),
        ("-0.25", -0.25),
        ("1e-3", 0.001),
        ("2.5E+2", 250.0),
        ("-1e2", -100.0),
    ],
)
def test_number_field_accepts_every_number_literal_as_a_float(literal: str, value: float) -> None:
    parsed = parse(f"confidence > {literal}")
    assert parsed == Comparison("confidence", Op.GT, value)
    assert isinstance(parsed, Comparison)
    assert type(parsed.value) is float


@pytest.mark.parametrize(
    ("literal", "found"), [('"0.5"', '"0.5"'), ("high", '"high"'), ("true", '"true"')]
)
def test_number_field_refuses_what_is_not_a_number(literal: str, found: str) -> None:
    error = error_of(f"confidence > {literal}")
    assert error.position == 13
    assert error.summary == (
        f'filter: field "confidence" is NUMBER; expected a number, found {found} at position 13'
    )


@pytest.mark.parametrize("literal", ["1e999", "-1e999", "1" + "0" * 400])
def test_number_field_refuses_numbers_beyond_float_range(literal: str) -> None:
    error = error_of(f"confidence > {literal}")
    assert error.position == 13
    assert error.summary == f"filter: number {literal} is out of range at position 13"


@pytest.mark.parametrize(
    ("literal", "value"),
    [("3", 3), ("-3", -3), ("0", 0), (str(2**63 - 1), 2**63 - 1), (str(-(2**63)), -(2**63))],
)
def test_integer_field_accepts_integer_literals_in_64_bit_range(literal: str, value: int) -> None:
    parsed = parse(f"frame = {literal}")
    assert parsed == Comparison("frame", Op.EQ, value)
    assert isinstance(parsed, Comparison)
    assert type(parsed.value) is int


@pytest.mark.parametrize("literal", ["1.5", "1.0", "1e3"])
def test_integer_field_refuses_non_integer_numbers(literal: str) -> None:
    error = error_of(f"frame = {literal}")
    assert error.position == 8
    assert error.summary == (
        f'filter: field "frame" is INTEGER; expected an integer, found "{literal}" at position 8'
    )


def test_integer_field_refuses_a_quoted_number() -> None:
    error = error_of('frame = "3"')
    assert error.position == 8
    assert error.summary == (
        'filter: field "frame" is INTEGER; expected an integer, found "3" at position 8'
    )


@pytest.mark.parametrize("literal", [str(2**63), str(-(2**63) - 1)])
def test_integer_field_refuses_integers_beyond_64_bits(literal: str) -> None:
    error = error_of(f"frame = {literal}")
    assert error.position == 8
    assert error.summary == f"filter: integer {literal} is out of range at position 8"


@pytest.mark.parametrize(("literal", "value"), [("true", True), ("false", False)])
def test_bool_field_accepts_true_and_false(literal: str, value: bool) -> None:
    assert parse(f"is_validated = {literal}") == Comparison("is_validated", Op.EQ, value)


@pytest.mark.parametrize(
    ("literal", "found"),
    [("1", '"1"'), ('"true"', '"true"'), ("True", '"True"'), ("TRUE", '"TRUE"')],
)
def test_bool_field_refuses_anything_but_true_and_false(literal: str, found: str) -> None:
    error = error_of(f"is_validated = {literal}")
    assert error.position == 15
    assert error.summary == (
        f'filter: field "is_validated" is BOOL; expected true or false, found {found} '
        "at position 15"
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"2026-01-01T00:00:00Z"', datetime(2026, 1, 1, tzinfo=UTC)),
        ('"2026-01-01t00:00:00z"', datetime(2026, 1, 1, tzinfo=UTC)),
        ('"2026-01-01T02:00:00+02:00"', datetime(2026, 1, 1, tzinfo=UTC)),
        ('"2025-12-31T18:30:00-05:30"', datetime(2026, 1, 1, tzinfo=UTC)),
        ('"2026-01-01T00:00:00.25Z"', datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)),
        ('"2026-01-01T00:00:00.123456Z"', datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ('"2026-01-01T00:00:00.123456000Z"', datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("'2026-01-01T00:00:00Z'", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamp_field_parses_rfc3339_to_an_aware_datetime_in_utc(
    literal: str, value: datetime
) -> None:
    parsed = parse(f"create_time > {literal}")
    assert parsed == Comparison("create_time", Op.GT, value)
    assert isinstance(parsed, Comparison)
    assert isinstance(parsed.value, datetime)
    assert parsed.value.tzinfo is UTC


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        (
            '"2026-01-01T00:00:00"',
            'timestamp "2026-01-01T00:00:00" has no UTC offset; '
            'add "Z" or an offset such as "+02:00"',
        ),
        (
            '"2026-01-01"',
            '"2026-01-01" is not an RFC 3339 timestamp such as "2026-01-01T00:00:00Z"',
        ),
        (
            '"2026-01-01 00:00:00Z"',
            '"2026-01-01 00:00:00Z" is not an RFC 3339 timestamp such as "2026-01-01T00:00:00Z"',
        ),
        (
            '"yesterday"',
            '"yesterday" is not an RFC 3339 timestamp such as "2026-01-01T00:00:00Z"',
        ),
        (
            '"٢٠٢٦-01-01T00:00:00Z"',
            '"٢٠٢٦-01-01T00:00:00Z" is not an RFC 3339 timestamp such as "2026-01-01T00:00:00Z"',
        ),
        (
            '"2026-01-01T00:00:00.1234567Z"',
            'timestamp "2026-01-01T00:00:00.1234567Z" is more precise than a microsecond',
        ),
        (
            '"2026-02-30T00:00:00Z"',
            'timestamp "2026-02-30T00:00:00Z" is not a valid date and time '
            "(day is out of range for month)",
        ),
        (
            '"2026-01-01T24:00:00Z"',
            'timestamp "2026-01-01T24:00:00Z" is not a valid date and time (hour must be in 0..23)',
        ),
        (
            '"2026-01-01T00:00:00+24:00"',
            'timestamp "2026-01-01T00:00:00+24:00" has an invalid UTC offset',
        ),
        (
            '"2026-01-01T00:00:00+01:60"',
            'timestamp "2026-01-01T00:00:00+01:60" has an invalid UTC offset',
        ),
        (
            '"0001-01-01T00:00:00+01:00"',
            'timestamp "0001-01-01T00:00:00+01:00" is out of range',
        ),
    ],
)
def test_timestamp_field_refuses_what_is_not_an_rfc3339_moment(literal: str, problem: str) -> None:
    error = error_of(f"create_time > {literal}")
    assert error.position == 14
    assert error.summary == f"filter: {problem} at position 14"


def test_timestamp_field_refuses_an_unquoted_number() -> None:
    error = error_of("create_time > 1767225600")
    assert error.position == 14
    assert error.summary == (
        'filter: field "create_time" is TIMESTAMP; expected a quoted RFC 3339 timestamp such as '
        '"2026-01-01T00:00:00Z", found "1767225600" at position 14'
    )


@pytest.mark.parametrize("literal", ['"train"', "'val'", "test"])
def test_enum_field_accepts_declared_values_quoted_or_bare(literal: str) -> None:
    assert parse(f"split = {literal}") == Comparison("split", Op.EQ, literal.strip("\"'"))


@pytest.mark.parametrize("literal", ["Train", '"training"', "train.x"])
def test_enum_field_refuses_undeclared_values_and_lists_the_allowed_ones(literal: str) -> None:
    error = error_of(f"split = {literal}")
    assert error.position == 8
    assert error.summary == (
        f'filter: "{literal.strip(chr(34))}" is not a value of field "split" at position 8 '
        "(allowed: test, train, val)"
    )


def test_enum_field_refuses_numbers() -> None:
    error = error_of("split = 1")
    assert error.summary == (
        'filter: field "split" is ENUM; expected one of test, train, val, found "1" at position 8'
    )


@pytest.mark.parametrize(("symbol", "op"), [("=", Op.EQ), ("!=", Op.NE)])
def test_nullable_field_compares_with_null(symbol: str, op: Op) -> None:
    assert parse(f"validated_by {symbol} null") == Comparison("validated_by", op, None)


def test_null_is_refused_for_a_field_that_is_never_null() -> None:
    error = error_of("category = null")
    assert error.position == 11
    assert error.summary == 'filter: field "category" is never null at position 11'


@pytest.mark.parametrize("symbol", ["<", "<=", ">", ">="])
def test_null_is_refused_with_ordering_operators(symbol: str) -> None:
    error = error_of(f"quality_score {symbol} null")
    position = len(f"quality_score {symbol} ")
    assert error.position == position
    assert error.summary == (
        f'filter: null can only be compared with "=" or "!=" at position {position}'
    )


def test_quoted_null_is_a_string_not_null() -> None:
    assert parse('validated_by = "null"') == Comparison("validated_by", Op.EQ, "null")


# --- Operators against types --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["frame < 3", "bbox.width >= 3", "confidence <= 0.5", 'create_time > "2026-01-01T00:00:00Z"'],
)
def test_ordering_operators_are_allowed_on_numbers_and_timestamps(text: str) -> None:
    assert isinstance(parse(text), Comparison)


@pytest.mark.parametrize(
    ("text", "kind", "symbol"),
    [
        ('category > "cat"', "STRING", ">"),
        ("is_validated > true", "BOOL", ">"),
        ("split <= train", "ENUM", "<="),
    ],
)
def test_ordering_operators_are_refused_on_strings_bools_and_enums(
    text: str, kind: str, symbol: str
) -> None:
    name = text.split()[0]
    error = error_of(text)
    assert error.position == len(name) + 1
    assert error.summary == (
        f'filter: field "{name}" is {kind}; operator "{symbol}" is not allowed '
        f'at position {len(name) + 1} (use "=" or "!=")'
    )


# --- Errors and their positions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "summary"),
    [
        (
            'categroy = "cat"',
            0,
            'unknown field "categroy" at position 0; did you mean "category"? (known: bbox.width, '
            "category, confidence, create_time, frame, is_validated, model, quality_score, "
            "source, split, track, validated_at, validated_by)",
        ),
        (
            'color = "red"',
            0,
            'unknown field "color" at position 0 (known: bbox.width, category, confidence, '
            "create_time, frame, is_validated, model, quality_score, source, split, track, "
            "validated_at, validated_by)",
        ),
        (
            'category "cat"',
            9,
            'expected an operator (=, !=, <, <=, >, >=) after "category", found "cat" '
            "at position 9",
        ),
        (
            "category",
            8,
            'expected an operator (=, !=, <, <=, >, >=) after "category", found the end of '
            "the filter at position 8",
        ),
        (
            "confidence >=",
            13,
            'expected a value after ">=", found the end of the filter at position 13',
        ),
        (
            "confidence >= AND frame = 1",
            14,
            'expected a value after ">=", found "AND" at position 14',
        ),
        ("confidence >= -0.5)", 18, 'unmatched ")" at position 18'),
        ('category = "cat', 11, "unterminated string starting at position 11"),
        ("category = 'cat", 11, "unterminated string starting at position 11"),
        ('category = "cat\\', 11, "unterminated string starting at position 11"),
        (
            'category = "c\\at"',
            13,
            'invalid escape "\\a" at position 13; only \\\\, \\" and \\\' are escapes '
            "(write \\\\ for a backslash)",
        ),
        ('category = "cat" @', 17, 'unexpected character "@" at position 17'),
        (
            'category = "cat" && frame = 1',
            17,
            'unexpected character "&" at position 17; use AND to combine comparisons',
        ),
        (
            'category = "cat" || frame = 1',
            17,
            'unexpected character "|" at position 17; use OR to combine comparisons',
        ),
        (
            'category : "cat"',
            9,
            'unexpected character ":" at position 9; the ":" (has) operator is not supported, '
            'use "="',
        ),
        (
            '!category = "cat"',
            0,
            'unexpected character "!" at position 0; use "!=" to compare or NOT to negate',
        ),
        ('category == "cat"', 9, '"==" is not an operator at position 9; use "=" to compare'),
        ('catégorie = "cat"', 3, 'unexpected character "é" at position 3'),
        ('category = "cat"\x00', 16, 'unexpected character "\\x00" at position 16'),
        ("frame = 1abc", 8, "malformed number at position 8"),
        ("frame = 1.2.3", 8, "malformed number at position 8"),
        ("frame = 1e", 8, "malformed number at position 8"),
        ("frame = 1.", 8, "malformed number at position 8"),
        ("bbox. = 1", 5, 'expected a name after "." at position 5'),
        ("bbox.1 = 1", 5, 'expected a name after "." at position 5'),
        ('(category = "cat"', 0, '"(" is never closed at position 0'),
        ('category = "cat")', 16, 'unmatched ")" at position 16'),
        ("()", 1, 'expected a comparison after "(", found ")" at position 1'),
        (
            'category = "cat" AND',
            20,
            'expected a comparison after "AND", found the end of the filter at position 20',
        ),
        (
            'category = "cat" OR',
            19,
            'expected a comparison after "OR", found the end of the filter at position 19',
        ),
        ("NOT", 3, 'expected a comparison after "NOT", found the end of the filter at position 3'),
        ("-", 1, 'expected a comparison after "-", found the end of the filter at position 1'),
        ('AND category = "cat"', 0, 'expected a comparison, found "AND" at position 0'),
        (
            'category = "cat" AND OR frame = 1',
            21,
            'expected a comparison after "AND", found "OR" at position 21',
        ),
        ("frame = 1 = 2", 10, 'expected a comparison, found "=" at position 10'),
        ('frame = 1 "cat"', 10, 'expected a comparison, found "cat" at position 10'),
        ("frame = 1 -2", 10, 'expected a comparison, found "-2" at position 10'),
        ("frame = -x", 8, 'expected a value after "=", found "-" at position 8'),
        (
            '"' + "x" * 40 + '" = 1',
            0,
            'expected a comparison, found "xxxxxxxxxxxxxxxxxxxxxxxxxx... at position 0',
        ),
    ],
)
def test_each_error_names_the_problem_and_its_exact_position(
    text: str, position: int, summary: str
) -> None:
    error = error_of(text)
    assert error.summary == f"filter: {summary}"
    assert error.position == position


def test_filter_error_is_an_invalid_argument_on_the_filter_field() -> None:
    error = error_of('categroy = "cat"')
    assert isinstance(error, InvalidArgument)
    assert error.reason == "INVALID_FILTER"
    assert error.metadata == {"position": "0"}
    assert error.violations == [FieldViolation(field="filter", description=error.message)]


def test_error_message_shows_the_text_with_a_caret_under_the_position() -> None:
    error = error_of("is_validated > true")
    assert error.message.splitlines() == [
        error.summary,
        "  is_validated > true",
        "  " + " " * 13 + "^",
    ]
    assert str(error) == error.message


def test_error_excerpt_of_a_long_filter_is_a_window_around_the_position() -> None:
    text = " AND ".join(["frame = 1"] * 20) + " AND colour = 1"
    error = error_of(text)
    shown, caret = error.message.splitlines()[1:]
    assert shown.startswith("  ...")
    assert not shown.endswith("...")
    assert len(shown) <= 2 + 3 + 60
    assert shown[caret.index("^") :].startswith("colour")


def test_error_excerpt_ellipsis_on_both_sides_keeps_the_caret_aligned() -> None:
    text = "frame = 1 " * 10 + "frame > x " + "frame = 1 " * 10
    error = error_of(text)
    shown, caret = error.message.splitlines()[1:]
    assert shown.startswith("  ...")
    assert shown.endswith("...")
    assert shown[caret.index("^") :].startswith("x ")


def test_error_excerpt_replaces_tabs_and_newlines_so_the_caret_stays_aligned() -> None:
    error = error_of("frame = 1\n\tcolour = 1")
    shown, caret = error.message.splitlines()[1:]
    assert shown == "  frame = 1  colour = 1"
    assert caret == "             ^"


# --- Limits and hostile input -------------------------------------------------------------------


def _filter_of_length(length: int) -> str:
    prefix = 'category = "'
    return prefix + "x" * (length - len(prefix) - 1) + '"'


def test_filter_of_the_maximum_length_is_accepted() -> None:
    text = _filter_of_length(MAX_FILTER_LENGTH)
    assert len(text) == 4096
    assert isinstance(parse(text), Comparison)


def test_filter_longer_than_the_maximum_is_refused_at_the_first_extra_character() -> None:
    error = error_of(_filter_of_length(MAX_FILTER_LENGTH + 1))
    assert error.position == 4096
    assert error.summary == (
        "filter: longer than 4096 characters at position 4096 (the filter has 4097)"
    )


def test_nesting_to_the_maximum_depth_is_accepted() -> None:
    depth = MAX_NESTING_DEPTH
    assert parse("(" * depth + "frame = 1" + ")" * depth) == Comparison("frame", Op.EQ, 1)


def test_parentheses_nested_deeper_than_the_maximum_are_refused_at_the_extra_one() -> None:
    depth = MAX_NESTING_DEPTH + 1
    error = error_of("(" * depth + "frame = 1" + ")" * depth)
    assert error.position == 32
    assert error.summary == (
        'filter: nesting deeper than 32 levels at position 32 (each "(", NOT and "-" adds a level)'
    )


def test_not_counts_toward_the_nesting_limit() -> None:
    assert isinstance(parse("NOT " * 32 + "frame = 1"), Not)
    error = error_of("NOT " * 33 + "frame = 1")
    assert error.position == 128


def test_parentheses_and_negations_add_up_toward_the_nesting_limit() -> None:
    error = error_of("(-" * 17 + "frame = 1" + ")" * 17)
    assert error.position == 32


def test_depth_is_released_after_a_group_closes() -> None:
    group = "(" * 30 + "frame = 1" + ")" * 30
    assert parse(" AND ".join([group] * 4)) == And((Comparison("frame", Op.EQ, 1),) * 4)


def test_the_maximum_number_of_comparisons_is_accepted() -> None:
    parsed = parse(" ".join(["frame=1"] * MAX_COMPARISONS))
    assert isinstance(parsed, And)
    assert len(parsed.terms) == 256


def test_more_comparisons_than_the_maximum_are_refused_at_the_extra_one() -> None:
    error = error_of(" ".join(["frame=1"] * (MAX_COMPARISONS + 1)))
    assert error.position == 256 * len("frame=1 ")
    assert error.summary == "filter: more than 256 comparisons at position 2048"


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000,
        "(" * 4000,
        ")" * 4000,
        "NOT " * 1000,
        "-" * 4000,
        "- " * 2000,
        '"' * 4001,
        "\\" * 4000,
        "frame = 1 OR " * 300,
        "\x00" * 100,
        "\u202e" + 'category = "cat"',
        "frame=" * 600,
    ],
)
def test_hostile_input_gives_a_filter_error_not_a_crash(text: str) -> None:
    error = error_of(text)
    assert 0 <= error.position <= len(text)


# --- evaluate -----------------------------------------------------------------------------------

RECORD: dict[str, object] = {
    "category": "cat",
    "confidence": 0.75,
    "quality_score": None,
    "is_validated": False,
    "create_time": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    "source": "sources/0b6e",
    "model": "florence2",
    "frame": 7,
    "bbox.width": 120,
    "split": "train",
}


def matches(text: str, record: dict[str, object] = RECORD) -> bool:
    return evaluate(parse(text), record)


def test_no_filter_matches_every_record() -> None:
    assert evaluate(None, {}) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frame = 7", True),
        ("frame = 8", False),
        ("frame != 7", False),
        ("frame != 8", True),
        ("frame < 7", False),
        ("frame < 8", True),
        ("frame <= 7", True),
        ("frame <= 6", False),
        ("frame > 6", True),
        ("frame > 7", False),
        ("frame >= 7", True),
        ("frame >= 8", False),
        ("confidence >= 0.75", True),
        ("confidence > 0.75", False),
        ("confidence = 0.75", True),
        ("bbox.width > 100", True),
    ],
)
def test_comparisons_of_numbers_follow_their_operator(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('category = "cat"', True),
        ('category = "Cat"', False),
        ('category != "dog"', True),
        ('category != "cat"', False),
        ("is_validated = false", True),
        ("is_validated != false", False),
        ("split = train", True),
        ("split != val", True),
    ],
)
def test_comparisons_of_strings_bools_and_enums_are_exact(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('create_time = "2026-03-01T13:00:00+01:00"', True),
        ('create_time > "2026-03-01T12:00:00Z"', False),
        ('create_time >= "2026-03-01T12:00:00Z"', True),
        ('create_time < "2026-03-01T12:00:00.000001Z"', True),
    ],
)
def test_comparisons_of_timestamps_are_exact_across_offsets(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_record_timestamp_in_another_zone_compares_by_instant() -> None:
    local = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert matches('create_time = "2026-03-01T12:00:00Z"', {"create_time": local}) is True


def test_integer_record_value_compares_with_a_number_filter() -> None:
    assert matches("confidence = 1", {"confidence": 1}) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("validated_by = null", True),
        ("validated_by != null", False),
        ('validated_by = "alice"', False),
        ('validated_by != "alice"', False),
        ('validated_at < "2030-01-01T00:00:00Z"', False),
        ('validated_at >= "2000-01-01T00:00:00Z"', False),
        ('NOT validated_by = "alice"', True),
        ('NOT validated_by != "alice"', True),
    ],
)
def test_a_missing_field_is_null_and_only_equals_null(text: str, expected: bool) -> None:
    assert "validated_by" not in RECORD
    assert "validated_at" not in RECORD
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quality_score = null", True),
        ("quality_score != null", False),
        ("quality_score > 0", False),
        ("quality_score <= 0", False),
        ("NOT quality_score > 0", True),
    ],
)
def test_a_none_value_is_null_like_a_missing_field(text: str, expected: bool) -> None:
    assert RECORD["quality_score"] is None
    assert matches(text) is expected


def test_a_present_value_does_not_equal_null() -> None:
    assert matches("split = null") is False
    assert matches("split != null") is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('category = "dog" AND frame = 7 OR frame = 8', False),  # dog AND (7 OR 8)
        ('(category = "dog" AND frame = 8) OR frame = 7', True),
        ('category = "cat" AND (frame = 1 OR bbox.width = 120)', True),
        ('category = "cat" frame = 1', False),
        ('NOT category = "dog"', True),
        ('-category = "cat"', False),
        ('NOT NOT category = "cat"', True),
        ("frame = 1 OR frame = 2 OR frame = 7", True),
    ],
)
def test_boolean_composition_follows_the_parsed_precedence(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("expr", "record"),
    [
        (Comparison("frame", Op.EQ, 7), {"frame": "7"}),
        (Comparison("frame", Op.EQ, 1), {"frame": True}),
        (Comparison("is_validated", Op.EQ, True), {"is_validated": 1}),
        (Comparison("category", Op.EQ, "cat"), {"category": b"cat"}),
        (
            Comparison("create_time", Op.GT, datetime(2026, 1, 1, tzinfo=UTC)),
            {"create_time": datetime(2026, 3, 1)},
        ),
        (
            Comparison("create_time", Op.EQ, datetime(2026, 1, 1, tzinfo=UTC)),
            {"create_time": "2026-01-01T00:00:00Z"},
        ),
    ],
)
def test_a_record_value_of_another_kind_raises_type_error(
    expr: Comparison, record: dict[str, object]
) -> None:
    with pytest.raises(TypeError, match="cannot be compared"):
        evaluate(expr, record)


@pytest.mark.parametrize("value", [datetime(2026, 1, 1), b"cat"], ids=["naive datetime", "bytes"])
def test_a_hand_built_value_no_filter_holds_raises_type_error_even_against_its_like(
    value: object,
) -> None:
    expr = Comparison("create_time", Op.EQ, value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot be compared"):
        evaluate(expr, {"create_time": value})


def test_hand_built_ordering_against_null_raises_value_error() -> None:
    with pytest.raises(ValueError, match="null can only be compared"):
        evaluate(Comparison("quality_score", Op.LT, None), {})


def test_evaluating_something_that_is_not_an_expression_raises_type_error() -> None:
    with pytest.raises(TypeError, match="not a filter expression"):
        evaluate("frame = 1", {})  # type: ignore[arg-type]


# --- fields_used --------------------------------------------------------------------------------


def test_fields_used_of_no_filter_is_empty() -> None:
    assert fields_used(None) == frozenset()


def test_fields_used_lists_each_canonical_field_once() -> None:
    text = (
        '(category = "cat" OR category = "dog") AND NOT created_at > "2026-01-01T00:00:00Z" '
        "-frame = 1"
    )
    assert fields_used(parse(text)) == frozenset({"category", "create_time", "frame"})


# --- format_filter and round trips --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'category = "cat" AND confidence >= 0.5 AND is_validated = false '
        'AND create_time > "2026-01-01T00:00:00Z"',
        '(category = "cat" OR category = "dog") AND NOT is_validated = true',
        'category = "cat" AND confidence >= 0.5 OR is_validated = true',
        '(category = "cat" AND confidence >= 0.5) OR is_validated = true',
        '-source = "sources/0b6e..."',
        'validated_by = "alice" model != "florence2" track = "tracks/xyz"',
        r"""category = "say \"hi\" \\ bye" OR category = 'it\'s'""",
        "confidence > 1e-7 AND confidence < 1e300 AND quality_score != -0.0",
        'created_at >= "2026-01-01T02:00:00.5+02:00"',
        "validated_by = null AND split != null AND split = test",
        "NOT (frame = 1 AND bbox.width > -3) NOT NOT frame = 2",
        "((frame = 1 OR (frame = 2 OR frame = 3)) AND ((frame < 9)))",
    ],
)
def test_formatting_a_parsed_filter_parses_back_to_the_same_expression(text: str) -> None:
    parsed = parse(text)
    assert parse(format_filter(parsed)) == parsed


def test_format_puts_or_groups_inside_and_in_parentheses_for_readers() -> None:
    parsed = parse('category = "cat" AND frame = 1 OR frame = 2')
    assert format_filter(parsed) == 'category = "cat" AND (frame = 1 OR frame = 2)'


def test_format_writes_canonical_literals() -> None:
    parsed = parse(
        'created_at > "2026-01-01T02:00:00.5+02:00" AND is_validated = true '
        "AND confidence >= 1 AND -validated_by = null AND category = 'a\"b\\\\c'"
    )
    assert format_filter(parsed) == (
        'create_time > "2026-01-01T00:00:00.500000Z" AND is_validated = true '
        'AND confidence >= 1.0 AND NOT validated_by = null AND category = "a\\"b\\\\c"'
    )


def test_format_of_no_filter_is_empty() -> None:
    assert format_filter(None) == ""


def test_format_parenthesizes_hand_built_groups_inside_not_and_or() -> None:
    expr = Or((And((CAT, VALIDATED)), Not(Or((DOG, CONFIDENT)))))
    assert format_filter(expr) == (
        '(category = "cat" AND is_validated = true) OR NOT (category = "dog" OR confidence >= 0.5)'
    )


@pytest.mark.parametrize("number", [float("inf"), float("nan")])
def test_format_refuses_numbers_a_filter_cannot_hold(number: float) -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        format_filter(Comparison("confidence", Op.GT, number))


# --- Schema -------------------------------------------------------------------------------------


def test_schema_is_a_mapping_of_canonical_names() -> None:
    assert len(SCHEMA) == 13
    assert "category" in SCHEMA
    assert "created_at" not in SCHEMA
    assert SCHEMA["create_time"].type is FieldType.TIMESTAMP
    assert list(SCHEMA)[:2] == ["category", "confidence"]


def test_schema_resolves_names_and_aliases_to_their_field() -> None:
    assert SCHEMA.resolve("created_at") is SCHEMA["create_time"]
    assert SCHEMA.resolve("create_time") is SCHEMA["create_time"]
    assert SCHEMA.resolve("nope") is None
    assert "created_at" in SCHEMA.spellings()


def test_schema_repr_names_its_fields() -> None:
    small = FilterSchema([FilterField("frame", FieldType.INTEGER)])
    assert repr(small) == (
        "FilterSchema([FilterField(name='frame', type=<FieldType.INTEGER: 'INTEGER'>, "
        "enum_values=frozenset(), nullable=False, aliases=())])"
    )


@pytest.mark.parametrize(
    "fields",
    [
        [FilterField("frame", FieldType.INTEGER), FilterField("frame", FieldType.NUMBER)],
        [
            FilterField("create_time", FieldType.TIMESTAMP),
            FilterField("update_time", FieldType.TIMESTAMP, aliases=("create_time",)),
        ],
    ],
)
def test_schema_refuses_a_name_declared_twice(fields: list[FilterField]) -> None:
    with pytest.raises(ValueError, match="declared twice"):
        FilterSchema(fields)


@pytest.mark.parametrize("name", ["1frame", "bbox-width", "bbox.", "", "AND", "OR", "NOT"])
def test_field_refuses_a_name_a_filter_could_not_spell(name: str) -> None:
    with pytest.raises(ValueError, match="cannot be a filter field name"):
        FilterField(name, FieldType.INTEGER)


def test_field_refuses_an_alias_a_filter_could_not_spell() -> None:
    with pytest.raises(ValueError, match="cannot be a filter field name"):
        FilterField("frame", FieldType.INTEGER, aliases=("frame-number",))


def test_enum_field_requires_values() -> None:
    with pytest.raises(ValueError, match="enum_values"):
        FilterField("split", FieldType.ENUM)


def test_non_enum_field_refuses_values() -> None:
    with pytest.raises(ValueError, match="enum_values"):
        FilterField("frame", FieldType.INTEGER, enum_values=frozenset({"a"}))
