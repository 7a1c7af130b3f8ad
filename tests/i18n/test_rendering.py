"""Templates are compiled once per language (DESIGN 4.15, ``nproxy_core.i18n.rendering``): a
constant message is translated when the template is compiled, a message with values when the
page renders, and no language ever gets another's compiled page."""

from __future__ import annotations

import pytest
from pyramid.interfaces import IRendererFactory

from nproxy_core.i18n import _
from nproxy_core.i18n.jinja import translators
from nproxy_core.i18n.localizers import catalog_localizer, localizer_for


def in_language(language: str, message: str) -> str:
    return catalog_localizer(language).translate(_(message))


def skip_link(app, language: str) -> str:
    page = app.get("/login", headers={"Accept-Language": language})
    return page.html.find("a", class_="skip-link").text


def test_pages_of_several_languages_in_turn_each_speak_their_own(app):
    expected = {language: in_language(language, "Skip to content") for language in ("ru", "uz")}
    expected["en"] = "Skip to content"
    assert len(set(expected.values())) == 3
    for language in ["ru", "en", "uz", "ru", "en", "uz"]:
        assert skip_link(app, language) == expected[language]


@pytest.fixture
def environment(registry):
    """The compiled pages' environment of Russian."""
    factory = registry.getUtility(IRendererFactory, name=".html")
    return factory.environment_for(localizer_for(registry, "ru"))


def test_a_constant_message_is_translated_when_the_page_is_compiled(environment):
    source = '{{ _("Log in") }}|{% trans %}Log in{% endtrans %}|{{ gettext("Log in") }}'
    code = environment.compile(source, raw=True)
    russian = in_language("ru", "Log in")
    assert russian != "Log in"
    assert "gettext" not in code and "context.call" not in code
    assert environment.from_string(source).render() == "|".join([russian] * 3)


def test_a_message_with_values_is_translated_and_escaped_as_the_page_renders(environment, registry):
    template = environment.from_string('{{ _("Hello, %(name)s!", name=name) }}')
    # The page's translators are its reader's (the renderer passes them), here English.
    english = translators(localizer_for(registry, "en"))
    assert template.render(name="<b>", **english) == "Hello, &lt;b&gt;!"
    # Outside a request and with no localizer, the globals write English.
    assert template.render(name="Ann") == "Hello, Ann!"


def test_a_constant_message_keeps_what_the_call_would_write(environment):
    # ``%%`` is one ``%`` and the text is the template's own (not escaped), as at run time.
    assert environment.from_string('{{ _("100%% <b>sure</b>") }}').render() == "100% <b>sure</b>"
    # A message that names a value it is not given fails as the call would, when rendered.
    template = environment.from_string('{{ _("Hello, %(name)s!") }}')
    with pytest.raises(KeyError):
        template.render()


def test_an_app_configured_again_reuses_the_compiled_pages_of_each_language(make_app, monkeypatch):
    from jinja2 import Environment

    expected = {language: in_language(language, "Skip to content") for language in ("ru", "uz")}
    expected["en"] = "Skip to content"
    first = make_app()
    for language in expected:
        assert skip_link(first, language) == expected[language]

    compiled: list[str] = []
    compile_source = Environment.compile

    def counting(self, source, name=None, *args, **kw):
        compiled.append(name)
        return compile_source(self, source, name, *args, **kw)

    monkeypatch.setattr(Environment, "compile", counting)
    # Another app of the same settings: the same pages in every language, none compiled again,
    # and each language still gets its own compiled page.
    second = make_app()
    for language in ["uz", "en", "ru"]:
        assert skip_link(second, language) == expected[language]
    assert compiled == []
    # Other renderer settings are other compiled code.
    third = make_app(jinja2__lstrip_blocks="false")
    assert skip_link(third, "ru") == expected["ru"]
    assert compiled
