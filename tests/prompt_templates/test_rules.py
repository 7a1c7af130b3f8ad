"""The rules of templates as plain functions: a definition's fields and placeholders, and a
person's inputs made into a prompt."""

from __future__ import annotations

import pytest

from nproxy_core.errors import ValidationError
from nproxy_core.prompt_templates.schemas import Field, check_fields, check_prompt, fill

FIELDS = [
    Field("photo", "Your photo", "image"),
    Field("species", "Species", "select", ("Fox", "Wolf")),
    Field("mood", "Mood", "text", required=False),
]
PROMPT = "Turn the person in {photo} into a {species}, looking {mood}."


def refused(call, *args) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        call(*args)
    return caught.value.fields


def test_inputs_fill_the_placeholders_and_an_image_reads_as_the_attached_image():
    filled = fill(PROMPT, FIELDS, {"photo": "u-1", "species": "Fox", "mood": " happy "})
    assert filled.prompt == "Turn the person in the attached image into a Fox, looking happy."
    assert filled.upload_ids == ("u-1",)
    assert filled.images == (("photo", "u-1"),)
    assert filled.inputs == {"photo": "u-1", "species": "Fox", "mood": "happy"}


def test_two_images_are_numbered_in_field_order():
    fields = [Field("a", "A", "image"), Field("b", "B", "image")]
    filled = fill("Put {b} beside {a}.", fields, {"a": "u-a", "b": "u-b"})
    assert filled.prompt == "Put attached image 2 beside attached image 1."
    assert filled.upload_ids == ("u-a", "u-b")


def test_an_optional_field_left_out_leaves_no_double_spaces():
    filled = fill("A {species}  {mood} portrait", FIELDS[1:], {"species": "Wolf"})
    assert filled.prompt == "A Wolf portrait"


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"species": "Fox"}, "inputs.photo"),
        ({"photo": "u", "species": "Cat"}, "inputs.species"),
        ({"photo": "u", "species": "Fox", "colour": "red"}, "inputs.colour"),
        ({"photo": "u", "species": "Fox", "mood": "x" * 301}, "inputs.mood"),
        ({"photo": "u", "species": "Fox", "mood": "a\x00b"}, "inputs.mood"),
        ({"photo": ["u"], "species": "Fox"}, "inputs.photo"),
        ("Fox", "inputs"),
    ],
)
def test_each_bad_input_is_named(inputs, field):
    assert field in refused(fill, PROMPT, FIELDS, inputs)


def test_a_definition_with_a_placeholder_no_field_fills_is_refused():
    assert refused(check_prompt, "A {species} in {place}", FIELDS) == {
        "prompt": "unknown_placeholder"
    }
    assert check_prompt(" A {species} ", FIELDS) == "A {species}"


@pytest.mark.parametrize(
    "raw",
    [
        [{"name": "Species", "label": "S", "kind": "text"}],
        [{"name": "a", "label": "A", "kind": "text"}, {"name": "a", "label": "B", "kind": "text"}],
        [{"name": "a", "label": "A", "kind": "colour"}],
        [{"name": "a", "label": "A", "kind": "select", "options": []}],
        [{"name": "a", "label": "A", "kind": "text", "options": ["x"]}],
        [{"name": "a", "label": "", "kind": "text"}],
        [{"name": f"f{n}", "label": "F", "kind": "text"} for n in range(9)],
        "a | A | text",
    ],
)
def test_bad_field_definitions_are_refused(raw):
    assert list(refused(check_fields, raw)) == ["fields"]
