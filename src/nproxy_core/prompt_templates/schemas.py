"""The rules of templates as plain functions: what a template's definition may hold, and how a
person's inputs become a prompt (DESIGN 4.17).

Every refusal is a ``ValidationError`` naming the field at fault: ``template`` for an unknown
template, ``inputs.<name>`` for an input, and, for an admin's definition, the column
(``prompt`` for a placeholder no field fills).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nproxy_core.errors import ValidationError
from nproxy_core.i18n.fields import (
    ENGLISH_NAMES,
    TRANSLATED,
    BadTranslation,
    checked_text,
    clean_text,
    form_name,
)

FIELD_KINDS = ("text", "select", "image")
#: What a ``{placeholder}`` may be called; the same rule as a field's name.
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
#: Longest text a person may type into one field; the whole prompt has its own limit.
INPUT_MAX_CHARS = 300
MAX_FIELDS = 8
MAX_OPTIONS = 30
TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_CHARS = 500
LABEL_MAX_CHARS = 60
PROMPT_MAX_CHARS = 3000
#: Keys a template submission may carry beside ``template`` and ``inputs``.
SUBMISSION_EXTRAS = frozenset({"batch_size", "provider"})


def _invalid(field: str, message: str, reason: str = "invalid") -> ValidationError:
    return ValidationError(message, fields={field: reason})


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str
    options: tuple[str, ...] = ()
    required: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "kind": self.kind,
            "options": list(self.options),
            "required": self.required,
        }


def placeholders(prompt: str) -> list[str]:
    """The ``{names}`` in a prompt, in order of first appearance."""
    seen: list[str] = []
    for name in PLACEHOLDER.findall(prompt):
        if name not in seen:
            seen.append(name)
    return seen


def text_value(value: Any, field: str, label: str, limit: int, *, required: bool = True) -> str:
    """``value`` as trimmed text of at most ``limit`` characters (no NUL), or 400 naming
    ``field``; "" when it may be empty and is."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _invalid(field, f"The {label} must be text.")
    if "\x00" in value:
        raise _invalid(field, f"The {label} contains a NUL character.")
    value = value.strip()
    if required and not value:
        raise _invalid(field, f"The {label} is required.", "required")
    if len(value) > limit:
        raise _invalid(field, f"The {label} is longer than {limit} characters.", "too_long")
    return value


def check_fields(raw: Any) -> list[Field]:
    """An admin's field list, checked: names unique and plain, kinds known, selects with
    options."""
    if not isinstance(raw, list) or not all(isinstance(f, Mapping) for f in raw):
        raise _invalid("fields", "The fields must be a list of objects.")
    if len(raw) > MAX_FIELDS:
        raise _invalid("fields", f"A template has at most {MAX_FIELDS} fields.", "too_many")
    fields: list[Field] = []
    for n, item in enumerate(raw, start=1):
        name = item.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise _invalid(
                "fields",
                f"Field {n}: the name must be lower-case letters, digits and _ "
                f"(starting with a letter), e.g. species.",
            )
        if any(f.name == name for f in fields):
            raise _invalid("fields", f"Two fields are named {name!r}.")
        label = text_value(item.get("label"), "fields", f"label of field {name!r}", LABEL_MAX_CHARS)
        kind = item.get("kind")
        if kind not in FIELD_KINDS:
            raise _invalid(
                "fields", f"Field {name!r}: the kind must be one of {', '.join(FIELD_KINDS)}."
            )
        options_raw = item.get("options") or []
        if not isinstance(options_raw, list) or not all(isinstance(o, str) for o in options_raw):
            raise _invalid("fields", f"Field {name!r}: the options must be a list of text.")
        options = tuple(o.strip() for o in options_raw if o.strip())
        if kind == "select" and not options:
            raise _invalid("fields", f"Field {name!r}: a select needs at least one option.")
        if kind != "select" and options:
            raise _invalid("fields", f"Field {name!r}: only a select has options.")
        if len(options) > MAX_OPTIONS or any(len(o) > INPUT_MAX_CHARS for o in options):
            raise _invalid("fields", f"Field {name!r}: too many or too long options.")
        required = item.get("required", True)
        if not isinstance(required, bool):
            raise _invalid("fields", f"Field {name!r}: required must be true or false.")
        fields.append(Field(name, label, kind, options, required))
    return fields


def check_translations(raw: Any, fields: Sequence[Field]) -> dict[str, Any]:
    """An admin's translations of a template, checked against its (English) ``fields``:
    ``{language: {"title", "description", "fields": {name: {"label", "options": {english:
    translated}}}}}``, blanks left out. A refusal names the form's field (``title_ru``,
    ``fields_uz``) and says what does not fit."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _invalid("translations", "The translations must be an object by language.")
    by_name = {f.name: f for f in fields}
    out: dict[str, Any] = {}
    for language, texts in raw.items():
        if language not in TRANSLATED or not isinstance(texts, Mapping):
            raise _invalid("translations", f"Translations are objects for {', '.join(TRANSLATED)}.")
        unknown = set(texts) - {"title", "description", "fields"}
        if unknown:
            raise _invalid(
                "translations", f"Nothing called {sorted(unknown)[0][:40]!r} is translated."
            )
        kept: dict[str, Any] = {}
        try:
            for key, limit in (("title", TITLE_MAX_CHARS), ("description", DESCRIPTION_MAX_CHARS)):
                text = clean_text(texts.get(key), key, language, limit)
                if text:
                    kept[key] = text
            field_texts = _check_field_translations(texts.get("fields"), by_name, language)
        except BadTranslation as exc:
            raise _invalid(exc.field, exc.message, exc.reason) from None
        if field_texts:
            kept["fields"] = field_texts
        if kept:
            out[language] = kept
    return out


def _check_field_translations(
    raw: Any, by_name: Mapping[str, Field], language: str
) -> dict[str, Any]:
    where = form_name("fields", language)
    in_language = f"Fields in {ENGLISH_NAMES[language]}"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BadTranslation(where, f"{in_language}: give an object by field name.")
    out: dict[str, Any] = {}
    for name, entry in raw.items():
        field = by_name.get(name)
        if field is None:
            raise BadTranslation(
                where,
                f"{in_language}: the template has no field {str(name)[:40]!r} "
                f"(fields: {', '.join(by_name) or 'none'}).",
            )
        if not isinstance(entry, Mapping) or set(entry) - {"label", "options"}:
            raise BadTranslation(where, f"{in_language}: {name!r} takes a label and options.")
        kept: dict[str, Any] = {}
        label = _field_text(entry.get("label"), where, f"the label of {name!r}", LABEL_MAX_CHARS)
        if label:
            kept["label"] = label
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            raise BadTranslation(where, f"{in_language}: {name!r}'s options by English option.")
        translated: dict[str, str] = {}
        for option, text in options.items():
            if option not in field.options:
                raise BadTranslation(
                    where, f"{in_language}: {name!r} has no option {str(option)[:40]!r}."
                )
            text = _field_text(text, where, f"an option of {name!r}", INPUT_MAX_CHARS)
            if text:
                translated[option] = text
        if translated:
            kept["options"] = translated
        if kept:
            out[name] = kept
    return out


def _field_text(value: Any, where: str, what: str, limit: int) -> str:
    language = where.rsplit("_", 1)[-1]
    return checked_text(value, where, f"Fields in {ENGLISH_NAMES[language]}: {what}", limit)


def localized_fields(
    fields: Sequence[Mapping[str, Any]], translations: Mapping[str, Any], language: str
) -> list[dict[str, Any]]:
    """The stored ``fields`` for a reader of ``language``: each ``label`` translated and an
    ``option_labels`` list beside ``options`` (which stay the English values a submission
    sends); English wherever the admin wrote no translation."""
    texts = (translations or {}).get(language) or {}
    by_name = texts.get("fields") or {}
    out = []
    for f in fields:
        entry = by_name.get(f["name"]) or {}
        options = list(f.get("options") or ())
        names = entry.get("options") or {}
        out.append(
            {
                **f,
                "label": entry.get("label") or f["label"],
                "options": options,
                "option_labels": [names.get(o) or o for o in options],
            }
        )
    return out


def read_fields(raw: Sequence[Mapping[str, Any]]) -> list[Field]:
    """A stored field list (checked when it was saved)."""
    return [
        Field(
            f["name"], f["label"], f["kind"], tuple(f.get("options") or ()), f.get("required", True)
        )
        for f in raw
    ]


def check_prompt(prompt: Any, fields: Sequence[Field]) -> str:
    """An admin's prompt: text whose every ``{placeholder}`` names a field."""
    prompt = text_value(prompt, "prompt", "prompt", PROMPT_MAX_CHARS)
    names = {f.name for f in fields}
    for name in placeholders(prompt):
        if name not in names:
            raise _invalid(
                "prompt",
                f"The prompt has the placeholder {{{name[:40]}}}, which no field fills "
                f"(fields: {', '.join(sorted(names)) or 'none'}).",
                "unknown_placeholder",
            )
    return prompt


def check_slug(value: Any) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value.strip()):
        raise _invalid(
            "slug", "The slug must be lower-case letters, digits and dashes, e.g. product-shot."
        )
    return value.strip()


@dataclass(frozen=True)
class Filled:
    """A template filled in: the prompt to send and the upload ids of its image fields."""

    prompt: str
    upload_ids: tuple[str, ...]
    #: The inputs as given (checked), for the record.
    inputs: dict[str, str]
    #: (field name, upload id) of each image given, in field order.
    images: tuple[tuple[str, str], ...] = ()


def fill(prompt: str, fields: Sequence[Field], inputs: Any) -> Filled:
    """The prompt built from a person's ``inputs`` (``{name: value}``); image fields take
    upload ids, which the caller checks are theirs."""
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, Mapping):
        raise _invalid("inputs", "The inputs must be an object of field names and values.")
    by_name = {f.name: f for f in fields}
    for name in inputs:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise _invalid(
                f"inputs.{str(name)[:40]}",
                f"The template has no field {str(name)[:40]!r} (fields: {known}).",
                "unknown",
            )
    values: dict[str, str] = {}
    upload_ids: list[str] = []
    for f in fields:
        key = f"inputs.{f.name}"
        value = text_value(
            inputs.get(f.name), key, f.label.lower(), INPUT_MAX_CHARS, required=False
        )
        if not value:
            if f.required:
                raise _invalid(key, f"{f.label} is required.", "required")
            values[f.name] = ""
            continue
        if f.kind == "select" and value not in f.options:
            raise _invalid(
                key, f"{f.label}: {value[:40]!r} is not one of: {', '.join(f.options)}.", "option"
            )
        if f.kind == "image" and value in upload_ids:
            raise _invalid(key, "The same image is given for two fields.")
        if f.kind == "image":
            upload_ids.append(value)
        values[f.name] = value

    images = [f.name for f in fields if f.kind == "image" and values[f.name]]

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in by_name:
            # A definition saved before a field was removed: refused, never sent half-filled.
            raise _invalid(
                "template", f"The template uses {{{name[:40]}}}, which no field fills.", "broken"
            )
        if name in images:
            return (
                "the attached image"
                if len(images) == 1
                else f"attached image {images.index(name) + 1}"
            )
        return values[name]

    built = " ".join(PLACEHOLDER.sub(replace, prompt).split())
    return Filled(
        built,
        tuple(upload_ids),
        {k: v for k, v in values.items() if v},
        tuple((name, values[name]) for name in images),
    )
