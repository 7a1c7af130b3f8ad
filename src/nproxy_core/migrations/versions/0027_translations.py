"""Translations: plans', packs' and templates' own words in Russian and Uzbek

Revision ID: 0027_translations
Revises: 0026_languages

Each row gets ``translations`` (JSON, ``{}``: English only), which the admin fills on the same
forms as the English. The shipped plan and the five shipped templates get theirs here, for the
words an admin has not changed since they shipped (a changed English text keeps no stale
translation: the reader sees the admin's English until the admin translates it).
"""

# The Russian below is Cyrillic on purpose (ruff's RUF001 takes its letters for Latin look-alikes).
# ruff: noqa: RUF001

from typing import Any

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0027_translations"
down_revision = "0026_languages"
branch_labels = None
depends_on = None

TABLES = ("plans", "credit_packs", "prompt_templates")

#: The shipped plan (migration 0014): its code, English name and the name's translations.
PLAN = ("monthly", "Monthly", {"ru": "Месячный", "uz": "Oylik"})

#: The shipped templates (migration 0021) by slug: the English as shipped, then each language.
#: A field is ``(label, {option: translated option})``.
TEMPLATES: dict[str, dict[str, Any]] = {
    "fursona": {
        "en": {
            "title": "Fursona from your photo",
            "description": (
                "Your photo as an animal character: a portrait and a short character description."
            ),
            "fields": {
                "photo": ("Your photo", {}),
                "species": (
                    "Species",
                    dict.fromkeys(
                        ["Fox", "Wolf", "Cat", "Dog", "Dragon", "Rabbit", "Raccoon", "Otter"]
                    ),
                ),
                "colours": ("Colours", {}),
            },
        },
        "ru": {
            "title": "Фурсона по вашему фото",
            "description": (
                "Ваше фото в виде персонажа-животного: портрет и короткое описание характера."
            ),
            "fields": {
                "photo": ("Ваше фото", {}),
                "species": (
                    "Животное",
                    {
                        "Fox": "Лиса",
                        "Wolf": "Волк",
                        "Cat": "Кошка",
                        "Dog": "Собака",
                        "Dragon": "Дракон",
                        "Rabbit": "Кролик",
                        "Raccoon": "Енот",
                        "Otter": "Выдра",
                    },
                ),
                "colours": ("Цвета", {}),
            },
        },
        "uz": {
            "title": "Fotodan hayvon-personaj",
            "description": (
                "Fotosuratingiz hayvon qiyofasidagi personaj sifatida: portret va "
                "personajning qisqacha tavsifi."
            ),
            "fields": {
                "photo": ("Fotosuratingiz", {}),
                "species": (
                    "Hayvon turi",
                    {
                        "Fox": "Tulki",
                        "Wolf": "Bo\u02bbri",
                        "Cat": "Mushuk",
                        "Dog": "It",
                        "Dragon": "Ajdar",
                        "Rabbit": "Quyon",
                        "Raccoon": "Yenot",
                        "Otter": "Suv iti",
                    },
                ),
                "colours": ("Ranglar", {}),
            },
        },
    },
    "sticker": {
        "en": {
            "title": "Sticker",
            "description": "A die-cut sticker of anything, with a white border.",
            "fields": {
                "subject": ("Subject", {}),
                "style": (
                    "Style",
                    dict.fromkeys(["Cartoon", "Kawaii", "Flat vector", "Pixel art"]),
                ),
            },
        },
        "ru": {
            "title": "Стикер",
            "description": "Вырезанный по контуру стикер с чем угодно, с белой каймой.",
            "fields": {
                "subject": ("Что изобразить", {}),
                "style": (
                    "Стиль",
                    {
                        "Cartoon": "Мультяшный",
                        "Kawaii": "Каваи",
                        "Flat vector": "Плоский вектор",
                        "Pixel art": "Пиксель-арт",
                    },
                ),
            },
        },
        "uz": {
            "title": "Stiker",
            "description": (
                "Istalgan narsaning oq hoshiyali, kontur bo\u02bbyicha kesilgan stikeri."
            ),
            "fields": {
                "subject": ("Nima tasvirlansin", {}),
                "style": (
                    "Uslub",
                    {
                        "Cartoon": "Multfilm",
                        "Kawaii": "Kavaii",
                        "Flat vector": "Yassi vektor",
                        "Pixel art": "Piksel san\u02bcati",
                    },
                ),
            },
        },
    },
    "product-shot": {
        "en": {
            "title": "Product shot",
            "description": "A clean studio photograph of a product for a shop or an ad.",
            "fields": {
                "product": ("Product", {}),
                "setting": (
                    "Setting",
                    dict.fromkeys(
                        [
                            "a white studio background",
                            "a marble counter",
                            "a wooden table outdoors",
                        ]
                    ),
                ),
            },
        },
        "ru": {
            "title": "Предметное фото",
            "description": "Чистый студийный снимок товара для магазина или рекламы.",
            "fields": {
                "product": ("Товар", {}),
                "setting": (
                    "Обстановка",
                    {
                        "a white studio background": "белый студийный фон",
                        "a marble counter": "мраморная столешница",
                        "a wooden table outdoors": "деревянный стол на улице",
                    },
                ),
            },
        },
        "uz": {
            "title": "Mahsulot surati",
            "description": "Do\u02bbkon yoki reklama uchun mahsulotning toza studiya surati.",
            "fields": {
                "product": ("Mahsulot", {}),
                "setting": (
                    "Joy",
                    {
                        "a white studio background": "oq studiya foni",
                        "a marble counter": "marmar peshtaxta",
                        "a wooden table outdoors": "ochiq havodagi yog\u02bboch stol",
                    },
                ),
            },
        },
    },
    "avatar": {
        "en": {
            "title": "Avatar",
            "description": "A profile picture from your photo, in the style you pick.",
            "fields": {
                "photo": ("Your photo", {}),
                "style": (
                    "Style",
                    dict.fromkeys(["3D cartoon", "Anime", "Watercolour", "Pixel art"]),
                ),
            },
        },
        "ru": {
            "title": "Аватар",
            "description": "Аватарка по вашему фото в выбранном стиле.",
            "fields": {
                "photo": ("Ваше фото", {}),
                "style": (
                    "Стиль",
                    {
                        "3D cartoon": "3D-мультфильм",
                        "Anime": "Аниме",
                        "Watercolour": "Акварель",
                        "Pixel art": "Пиксель-арт",
                    },
                ),
            },
        },
        "uz": {
            "title": "Avatar",
            "description": "Fotosuratingizdan siz tanlagan uslubdagi profil rasmi.",
            "fields": {
                "photo": ("Fotosuratingiz", {}),
                "style": (
                    "Uslub",
                    {
                        "3D cartoon": "3D multfilm",
                        "Anime": "Anime",
                        "Watercolour": "Akvarel",
                        "Pixel art": "Piksel san\u02bcati",
                    },
                ),
            },
        },
    },
    "poster": {
        "en": {
            "title": "Poster",
            "description": "A poster with a headline, for an event or an idea.",
            "fields": {
                "headline": ("Headline", {}),
                "theme": ("Theme", {}),
                "style": ("Style", dict.fromkeys(["Retro", "Minimal", "Bold modern", "Art deco"])),
            },
        },
        "ru": {
            "title": "Постер",
            "description": "Постер с заголовком — для события или идеи.",
            "fields": {
                "headline": ("Заголовок", {}),
                "theme": ("Тема", {}),
                "style": (
                    "Стиль",
                    {
                        "Retro": "Ретро",
                        "Minimal": "Минимализм",
                        "Bold modern": "Яркий модерн",
                        "Art deco": "Ар-деко",
                    },
                ),
            },
        },
        "uz": {
            "title": "Plakat",
            "description": "Tadbir yoki g\u02bboya uchun sarlavhali plakat.",
            "fields": {
                "headline": ("Sarlavha", {}),
                "theme": ("Mavzu", {}),
                "style": (
                    "Uslub",
                    {
                        "Retro": "Retro",
                        "Minimal": "Minimalizm",
                        "Bold modern": "Yorqin zamonaviy",
                        "Art deco": "Ar-deko",
                    },
                ),
            },
        },
    },
}


def template_translations(row: Any, shipped: dict[str, Any]) -> dict[str, Any]:
    """The translations of ``shipped`` for the words of ``row`` that are still the English it
    shipped with (an option by its English value, so a reordered list keeps them)."""
    english = shipped["en"]
    fields = {f["name"]: f for f in (row.fields or [])}
    out: dict[str, Any] = {}
    for language in ("ru", "uz"):
        texts: dict[str, Any] = {}
        for key in ("title", "description"):
            if getattr(row, key) == english[key]:
                texts[key] = shipped[language][key]
        field_texts: dict[str, Any] = {}
        for name, (label, options) in shipped[language]["fields"].items():
            field = fields.get(name)
            if field is None:
                continue
            entry: dict[str, Any] = {}
            if field.get("label") == english["fields"][name][0]:
                entry["label"] = label
            kept = {o: options[o] for o in field.get("options") or () if o in options}
            if kept:
                entry["options"] = kept
            if entry:
                field_texts[name] = entry
        if field_texts:
            texts["fields"] = field_texts
        if texts:
            out[language] = texts
    return out


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "translations",
                    nproxy_core.db.JSONType,
                    nullable=False,
                    server_default=sa.text("'{}'"),
                )
            )
    bind = op.get_bind()
    plans = sa.table(
        "plans",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("translations", nproxy_core.db.JSONType),
    )
    code, name, names = PLAN
    bind.execute(
        sa.update(plans)
        .where(plans.c.code == code, plans.c.name == name)
        .values(translations={language: {"name": text} for language, text in names.items()})
    )
    templates = sa.table(
        "prompt_templates",
        sa.column("id", sa.Integer),
        sa.column("slug", sa.String),
        sa.column("title", sa.String),
        sa.column("description", sa.String),
        sa.column("fields", nproxy_core.db.JSONType),
        sa.column("translations", nproxy_core.db.JSONType),
    )
    rows = bind.execute(sa.select(templates).where(templates.c.slug.in_(list(TEMPLATES)))).all()
    for row in rows:
        translations = template_translations(row, TEMPLATES[row.slug])
        if translations:
            bind.execute(
                sa.update(templates)
                .where(templates.c.id == row.id)
                .values(translations=translations)
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("translations")
