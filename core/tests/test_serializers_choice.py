"""How a serializer is chosen for an object: the most specific claim wins, a tie is an error.

Claims are qualified class names matched against ``type(obj).__mro__`` (nothing is imported to
decide), so these tests use classes of this module and stand-in serializers that only claim.
"""

from __future__ import annotations

import pytest
from modelshelf.errors import AmbiguousSerializer, NoSerializer
from modelshelf.serializers import choose, qualified_name
from modelshelf.testing.stand_ins import claim_only


class Base:
    pass


class Middle(Base):
    pass


class Leaf(Middle):
    pass


class Mixin:
    pass


class Both(Leaf, Mixin):
    pass


def name(cls: type) -> str:
    return qualified_name(cls)


BASE = claim_only("test-base", name(Base))
MIDDLE = claim_only("test-middle", name(Middle))
MIXIN = claim_only("test-mixin", name(Mixin))


def test_claims_are_qualified_names_of_the_defining_module() -> None:
    assert name(Leaf) == f"{__name__}.Leaf"
    assert name(Base.__mro__[0]) == f"{__name__}.Base"


def test_claim_depth_is_the_position_in_the_mro() -> None:
    assert MIDDLE.claim_depth(Leaf()) == 1
    assert BASE.claim_depth(Leaf()) == 2
    assert BASE.claim_depth(Base()) == 0
    assert MIDDLE.claim_depth(Base()) is None  # a claim on a subclass never covers its base
    assert claim_only("opt-in").claim_depth(Leaf()) is None  # claims nothing: never chosen


@pytest.mark.parametrize("order", [(BASE, MIDDLE), (MIDDLE, BASE)])
def test_the_most_specific_claim_wins_whatever_the_order(order: tuple) -> None:
    assert choose(Leaf(), order).name == "test-middle"
    assert choose(Middle(), order).name == "test-middle"
    assert choose(Base(), order).name == "test-base"


def test_a_claim_on_the_class_itself_beats_any_claim_on_a_base() -> None:
    leaf = claim_only("test-leaf", name(Leaf))
    assert choose(Leaf(), [BASE, MIDDLE, leaf]).name == "test-leaf"


def test_several_claims_of_one_serializer_count_by_the_nearest() -> None:
    wide = claim_only("test-wide", name(Base), name(Leaf))
    assert wide.claim_depth(Leaf()) == 0
    assert choose(Leaf(), [MIDDLE, wide]).name == "test-wide"


def test_an_earlier_base_in_the_mro_is_more_specific() -> None:
    # Both's MRO: Both, Leaf, Middle, Base, Mixin, object.
    assert choose(Both(), [MIXIN, BASE]).name == "test-base"


def test_equal_claims_are_an_error_naming_the_candidates_and_the_way_out() -> None:
    twin = claim_only("test-middle-twin", name(Middle))
    with pytest.raises(AmbiguousSerializer) as caught:
        choose(Leaf(), [BASE, twin, MIDDLE])
    message = str(caught.value)
    assert name(Leaf) in message
    assert "test-middle, test-middle-twin" in message  # sorted, and only the tied ones
    assert "test-base" not in message
    assert "serializer=NAME" in message and "--serializer NAME" in message
    assert "\n" not in message


def test_a_tie_below_a_more_specific_claim_is_no_error() -> None:
    twins = [claim_only("test-base-a", name(Base)), claim_only("test-base-b", name(Base))]
    assert choose(Leaf(), [*twins, MIDDLE]).name == "test-middle"


def test_nothing_claims_the_object_names_the_installed_serializers() -> None:
    class Unclaimed:
        pass

    with pytest.raises(NoSerializer) as caught:
        choose(Unclaimed(), [BASE, MIDDLE])
    message = str(caught.value)
    assert "no installed serializer handles" in message
    assert "test-base, test-middle" in message
    assert "\n" not in message


def test_an_object_of_a_known_framework_names_the_package_to_install() -> None:
    # A class whose module says which framework it belongs to (nothing of it is imported).
    Fake = type("XGBClassifier", (), {"__module__": "xgboost.sklearn"})
    with pytest.raises(NoSerializer, match="modelshelf-xgboost"):
        choose(Fake(), [BASE])
