"""Free-text masking: identifiers a citizen writes into a petition never leave intake in clear."""

from __future__ import annotations

import random

import pytest

from services.intake import redact
from tests.personal_data import id_number, people, petition_text


def test_a_valid_id_number_is_masked_and_one_failing_its_check_digit_is_not_taken_for_one():
    rng = random.Random(1)
    good = id_number(rng)
    assert redact.is_id_number(good)
    assert redact.mask_identifiers(f"身份证{good}。") == f"身份证{good[:3]}{'*' * 11}{good[-4:]}。"
    # 18 digits that are neither an ID number nor a bank card: no phone inside a longer run of digits
    # is guessed either
    wrong = next(w for d in "0123456789" if not redact.is_id_number(w := good[:17] + d) and not redact._luhn(w))
    assert redact.mask_identifiers(f"单号{wrong}") == f"单号{wrong}"


def test_a_lower_case_x_check_character_counts():
    first17 = "11010519491231002"
    code = first17 + redact.id_check_digit(first17)
    assert code.endswith("X")
    assert code not in redact.mask_identifiers(f"证号{code.lower()}").upper()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("电话13812341234。", "电话138****1234。"),
        ("电话 138 1234 1234", "电话 138 **** 1234"),
        ("+86-13812341234", "+86-138****1234"),
        ("座机0532-88881234", "座机0532-****1234"),
        ("卡号6222020200112233446", "卡号6222***********3446"),
        ("邮箱 liuyang.home@example.com", "邮箱 l***@example.com"),
        ("第3网格门口", "第3网格门口"),
        ("今年12月3日，共2000元", "今年12月3日，共2000元"),
    ],
)
def test_phones_cards_and_mail_addresses_are_masked_and_ordinary_numbers_are_not(text, masked):
    assert redact.mask_identifiers(text) == masked


def test_the_citizens_own_name_and_address_are_masked_in_their_text():
    assert redact.mask_identifiers("我是刘洋河，住幸福路12号", ["刘洋河", "幸福路12号"]) == "我是刘**，住幸*****"


def test_an_address_keeps_its_street_and_grid_and_loses_its_numbers():
    assert redact.mask_address("幸福路123号4栋502室") == "幸福路*号*栋*室"
    assert redact.mask_address("下龙河新村第3网格 5号楼") == "下龙河新村第3网格 *号楼"
    assert redact.mask_address("3号网格") == "3号网格"


def test_generated_petitions_keep_none_of_their_identifiers():
    rng = random.Random(7)
    for person in people(300, seed=7):
        text = petition_text(person, rng)
        masked = redact.mask_identifiers(text, [person.name, person.address])
        for value in person.values().values():
            assert value not in masked, (value, masked)
        assert person.phone[:3] in masked  # still useful: the kind of number and its last digits
