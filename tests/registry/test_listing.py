"""Page size and order_by checks shared by every List method."""

from __future__ import annotations

import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.query.listing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    OrderKey,
    effective_page_size,
    parse_order_by,
)


def test_zero_page_size_means_the_default() -> None:
    assert effective_page_size(0) == DEFAULT_PAGE_SIZE


def test_page_size_above_the_maximum_is_lowered_to_it() -> None:
    assert effective_page_size(MAX_PAGE_SIZE + 1) == MAX_PAGE_SIZE
    assert effective_page_size(7) == 7


def test_negative_page_size_is_invalid_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        effective_page_size(-1)
    assert caught.value.violations[0].field == "page_size"


def test_order_by_parses_fields_and_directions() -> None:
    keys = parse_order_by(
        "confidence desc,  create_time ASC".lower(), {"confidence", "create_time"}
    )
    assert keys == (OrderKey("confidence", descending=True), OrderKey("create_time"))


def test_blank_order_by_means_no_order() -> None:
    assert parse_order_by("  ", {"confidence"}) == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("colour", "cannot order by 'colour'"),
        ("confidence sideways", "is not `field` or `field asc|desc`"),
        ("confidence, confidence desc", "names 'confidence' twice"),
        ("confidence,", "is not `field`"),
    ],
)
def test_bad_order_by_is_invalid_naming_the_field(text: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_order_by(text, {"confidence"})
    assert problem in caught.value.message
    assert caught.value.violations[0].field == "order_by"
