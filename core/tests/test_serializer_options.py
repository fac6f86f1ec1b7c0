"""``check_options``: a serializer refuses options it does not understand, in one line."""

from __future__ import annotations

import pytest
from modelshelf.errors import ModelshelfError
from modelshelf.serializers import check_options


def test_unknown_options_are_named_with_what_is_accepted() -> None:
    with pytest.raises(ModelshelfError) as caught:
        check_options(
            "tiny-json", "save", {"indnet": 2, "sort_keys": True}, ("sort_keys", "indent")
        )
    assert str(caught.value) == (
        "tiny-json does not understand save option(s) indnet (accepted: indent, sort_keys)"
    )


def test_a_serializer_accepting_nothing_says_so() -> None:
    with pytest.raises(ModelshelfError, match=r"load option\(s\) a, b \(accepted: none\)$"):
        check_options("tiny-json", "load", {"b": 1, "a": 2}, ())


def test_known_options_and_none_pass() -> None:
    check_options("tiny-json", "load", {}, ())
    check_options("tiny-json", "save", {"indent": 2}, ("indent", "sort_keys"))
