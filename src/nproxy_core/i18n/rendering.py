"""Templates compiled once per language (DESIGN 4.15): a page's constant messages, ``_("...")``
and ``{% trans %}`` blocks without values, are translated when the template is compiled, so a
translated page renders as fast as one written in English. Messages with values to fill are
translated as the page renders, by the reader's :func:`~nproxy_core.i18n.jinja.translators`.

Each language has its own Jinja2 environment, an overlay of the one pyramid_jinja2 configures
from the settings (same loader, filters and globals; its own cache of templates). The code they
compile is kept for the process (:class:`CompiledTemplates`), so an app configured again in the
same process (the tests configure hundreds) does not compile its templates again."""

from __future__ import annotations

import threading
from typing import Any

from jinja2 import Environment, Template, TemplateNotFound, nodes
from jinja2.bccache import Bucket, BytecodeCache
from jinja2.compiler import CodeGenerator, Frame
from jinja2.visitor import NodeTransformer
from pyramid.i18n import Localizer
from pyramid.path import DottedNameResolver
from pyramid_jinja2 import (
    ENV_CONFIG_PHASE,
    IJinja2Environment,
    Jinja2RendererFactory,
    create_environment_from_options,
)
from pyramid_jinja2.settings import (
    parse_env_options_from_settings,
    parse_loader_options_from_settings,
)

from nproxy_core.i18n.jinja import translators

#: The names a template translates a message with (``{% trans %}`` calls ``gettext``).
GETTEXT_NAMES = frozenset({"_", "gettext"})


class ConstantMessages(NodeTransformer):
    """Replaces each call of ``_`` or ``gettext`` with one constant message and nothing else
    by the message in ``localizer``'s language, as the call would answer it."""

    def __init__(self, localizer: Localizer, autoescape: bool) -> None:
        self.localizer = localizer
        self.autoescape = autoescape

    def visit_Call(self, call: nodes.Call) -> nodes.Node:
        node = self.generic_visit(call)
        if not isinstance(node, nodes.Call):
            return node
        function, args = node.node, node.args
        if not (
            isinstance(function, nodes.Name)
            and function.name in GETTEXT_NAMES
            and len(args) == 1
            and isinstance(args[0], nodes.Const)
            and isinstance(args[0].value, str)
            and not node.kwargs
            and node.dyn_args is None
            and node.dyn_kwargs is None
        ):
            return node
        text = self.localizer.translations.gettext(args[0].value)
        if "%" in text:
            try:
                text = text % {}  # ``%%`` is ``%``, as the call would write it
            except (KeyError, TypeError, ValueError):
                return node  # the call fails the same way when the page renders
        constant = nodes.Const(text, lineno=node.lineno)
        # The template's own text, safe under autoescaping, as the call marks it.
        return nodes.MarkSafe(constant, lineno=node.lineno) if self.autoescape else constant


class TranslatingCodeGenerator(CodeGenerator):
    """Jinja2's code generator, translating constant messages first (:class:`ConstantMessages`)
    into the language of its environment's ``nproxy_localizer``."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        localizer = self.environment.nproxy_localizer  # type: ignore[attr-defined]
        autoescape = nodes.EvalContext(self.environment, self.name).autoescape
        node = ConstantMessages(localizer, autoescape).visit(node)
        super().visit_Template(node, frame)


class CompiledTemplates(BytecodeCache):
    """The code of every template compiled in this process, by language and renderer settings
    as well as by name (Jinja2 compares the source's checksum before it uses the code). Held in
    memory: a few hundred templates and languages at most."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        localizer = getattr(environment, "nproxy_localizer", None)
        language = "" if localizer is None else localizer.locale_name
        settings = getattr(environment, "nproxy_settings", "")
        key = self.get_cache_key(f"{settings}\0{language}\0{name}", filename)
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        code = bucket.bytecode_to_string()
        with self._lock:
            self._code[bucket.key] = code


#: One per process: the compiled code depends only on what its key names.
COMPILED_TEMPLATES = CompiledTemplates()


class LocalizedRendererFactory(Jinja2RendererFactory):  # type: ignore[misc]
    """pyramid_jinja2's renderer factory, rendering each template in its reader's language
    from an environment of that language."""

    def __init__(self) -> None:
        self.environment: Environment | None = None
        self.languages: dict[str, Environment] = {}

    def environment_for(self, localizer: Localizer | None) -> Environment:
        """The environment whose templates are compiled in ``localizer``'s language, made on
        first use (the catalogs do not change while the process runs)."""
        assert self.environment is not None, "the renderer is used before configuration"
        if localizer is None:
            return self.environment
        language = localizer.locale_name
        environment = self.languages.get(language)
        if environment is None:
            environment = self.environment.overlay()
            environment.code_generator_class = TranslatingCodeGenerator
            environment.nproxy_localizer = localizer  # type: ignore[attr-defined]
            # Its code is kept by language too (the overlay shares the base's compiled code).
            self.languages[language] = environment
        return environment

    def __call__(self, info: Any) -> LocalizedTemplateRenderer:
        names = [info.name]
        if ":" not in info.name and info.package is not None:
            # A caller-relative asset spec first, as pyramid_jinja2 looks it up.
            names.insert(0, f"{info.package.__name__}:{info.name}")
        return LocalizedTemplateRenderer(self, names)


class LocalizedTemplateRenderer:
    def __init__(self, factory: LocalizedRendererFactory, names: list[str]) -> None:
        self.factory = factory
        self.names = names

    def template(self, environment: Environment) -> Template:
        for name in self.names[:-1]:
            try:
                return environment.get_template(name)
            except TemplateNotFound:
                pass
        return environment.get_template(self.names[-1])

    def __call__(self, value: dict[str, Any], system: dict[str, Any]) -> str:
        try:
            system.update(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"renderer was passed non-dictionary as value: {error}") from error
        # The reader: the ``localizer`` a caller passed (a mail to an account), else the request's.
        localizer = system.get("localizer")
        if not isinstance(localizer, Localizer):
            localizer = getattr(system.get("request"), "localizer", None)
        if localizer is not None:
            for name, function in translators(localizer).items():
                system.setdefault(name, function)
        return self.template(self.factory.environment_for(localizer)).render(system)


def add_localized_jinja2_renderer(config: Any, name: str, settings_prefix: str) -> None:
    """``config.add_jinja2_renderer``, with templates compiled per language."""
    factory = LocalizedRendererFactory()
    config.add_renderer(name, factory)
    resolver = DottedNameResolver(package=config.package)

    def register() -> None:
        settings = config.get_settings()
        loader_options = parse_loader_options_from_settings(
            settings, settings_prefix, resolver.maybe_resolve, config.package
        )
        environment_options = parse_env_options_from_settings(
            settings, settings_prefix, resolver.maybe_resolve, config.package
        )
        environment = create_environment_from_options(environment_options, loader_options)
        # The settings that shape the compiled code, in the key of the code kept for the process.
        environment.nproxy_settings = repr(  # type: ignore[attr-defined]
            sorted((k, str(v)) for k, v in settings.items() if k.startswith(settings_prefix))
        )
        environment.bytecode_cache = COMPILED_TEMPLATES
        factory.environment = environment
        config.registry.registerUtility(factory.environment, IJinja2Environment, name=name)

    # pyramid_jinja2's own phase, so that ``add_jinja2_search_path`` finds the environment.
    config.action(("jinja2-renderer", name), register, order=ENV_CONFIG_PHASE)
