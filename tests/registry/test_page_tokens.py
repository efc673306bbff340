"""Page tokens: opaque, round-trip every sort value exactly, bound to their scope."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.query.page_tokens import (
    decode_page_token,
    encode_page_token,
    page_scope,
)


def test_a_token_round_trips_every_kind_of_sort_value_exactly() -> None:
    key = (0.1 + 0.2, 2**62, "naïve ☃", datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), uuid4())
    scope = page_scope("objects", "", "confidence asc")
    token = encode_page_token(scope, key)
    assert token.isascii()
    assert "=" not in token
    assert decode_page_token(token, scope, [float, int, str, datetime, type(key[4])]) == key


def test_a_token_for_another_scope_is_refused() -> None:
    token = encode_page_token(page_scope("objects", "a"), [1])
    with pytest.raises(InvalidArgument, match="another filter") as caught:
        decode_page_token(token, page_scope("objects", "b"), [int])
    assert caught.value.violations[0].field == "page_token"


@pytest.mark.parametrize("kinds", [[str], [int, int], [datetime], [type(uuid4())]])
def test_a_token_with_values_of_other_types_is_refused(kinds) -> None:
    token = encode_page_token("s", [1.5])
    with pytest.raises(InvalidArgument):
        decode_page_token(token, "s", kinds)


@pytest.mark.parametrize("value", [True, datetime(2026, 1, 1)])
def test_values_no_sort_key_holds_cannot_be_encoded(value) -> None:
    with pytest.raises(TypeError):
        encode_page_token("s", [value])


@pytest.mark.parametrize(
    "document",
    [
        '{"v":1,"s":"s","k":[["x",1]]}',
        '{"v":1,"s":"s","k":[1]}',
        "[]",
        '{"v":1,"s":"s","k":[["t","not a time"]]}',
        '{"v":1,"s":"s","k":[["u","nope"]]}',
    ],
)
def test_altered_tokens_are_refused(document: str) -> None:
    import base64

    token = base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")
    kinds = [datetime] if '"t"' in document else [type(uuid4())] if '"u"' in document else [int]
    with pytest.raises(InvalidArgument):
        decode_page_token(token, "s", kinds)
