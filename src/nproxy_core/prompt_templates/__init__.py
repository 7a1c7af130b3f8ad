"""Templates (DESIGN 4.17): prompt recipes with fields that people fill in instead of writing a
prompt; the gallery's JSON, each template's example image, and the rules that build a prompt
from a person's inputs. Submissions go through ``generation``; admins manage the rows in
``/admin/templates``."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.add_stored_objects(
        "nproxy_core.prompt_templates.models.PromptTemplate", prefix="templates/"
    )
    config.add_route("api.templates", "/api/v1/templates")
    config.add_route("prompt_template.example", "/templates/{slug}/example")
    config.scan("nproxy_core.prompt_templates.views")
