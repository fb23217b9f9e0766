"""What the host accepts from a roster source, and how it words what it refuses."""

from __future__ import annotations

import pytest

from licensing.storage.roster import normalize
from plugins.records import StudentRecord


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"source_id": "1", "role": None}, "the role must be a word"),
        ({"source_id": "1", "status": None}, "the status must be a word"),
        ({"source_id": "1", "role": "wizard"}, "'wizard' is neither a student nor a staff role"),
        ({"source_id": "1", "status": "asleep"}, "status 'asleep' is not one of"),
        ({"source_id": " "}, "the id is empty"),
        ({"source_id": "1", "enabled": "false"}, "enabled must be true or false"),
        ({"source_id": "1", "favourite_colour": "blue"}, "favourite_colour"),
    ],
)
def test_bad_records_are_refused_with_a_reason(record, message):
    with pytest.raises(ValueError, match=message):
        normalize(record, position=1)


def test_numbers_as_ids_are_read_as_text_and_the_id_is_the_default_person_key():
    row = normalize({"source_id": 1042}, position=1)

    assert (row["source_id"], row["person_key"]) == ("1042", "1042")


def test_a_disabled_status_word_means_a_disabled_account():
    row = normalize(StudentRecord(source_id="7", status="Disabled"), position=1)

    assert (row["lifecycle"], row["enabled"]) == ("inactive", False)


def test_staff_role_words_are_staff_whatever_their_case():
    assert normalize(StudentRecord(source_id="t", role="Teacher"), position=1)["role"] == "staff"
    assert normalize(StudentRecord(source_id="s", role="STUDENT"), position=1)["role"] == "student"
