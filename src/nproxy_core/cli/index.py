"""Which module defines each ``nproxy`` command, read from the features' sources, not imported.

Importing every feature to list its commands took over a second (Pyramid, SQLAlchemy, Celery,
boto3...). Instead, each feature's ``cli`` module is parsed (``ast``: a few milliseconds) for the
commands it attaches to the root group (``@main.command(...)``, ``@main.group(...)``) and for
the groups of other features it extends (``billing/cli.py`` adds ``users grant-cycle`` to the
``users`` group that ``accounts/cli.py`` defines). Running a command imports only its module
and the modules that extend it. No list is kept by hand: a new ``<feature>/cli.py`` is found
by its file name, and ``tests/foundation/test_cli_lazy.py`` checks that this index agrees with
the commands the imported modules really register.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "nproxy_core"
ROOT = Path(__file__).resolve().parent.parent
#: The module of the root group, which feature modules import ``main`` from.
ROOT_MODULE = f"{PACKAGE}.cli"


@dataclass(frozen=True)
class Entry:
    """A top-level command as its source declares it."""

    name: str
    module: str
    function: str
    help: str | None = None
    short_help: str | None = None
    hidden: bool = False


@dataclass
class Index:
    #: Top-level command name → how it is declared.
    commands: dict[str, Entry] = field(default_factory=dict)
    #: (module, function) of a group → modules that add commands to it.
    extenders: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def modules_for(self, name: str) -> list[str]:
        """The modules to import for command ``name``: its own, then those extending it."""
        entry = self.commands.get(name)
        if entry is None:
            return []
        return [entry.module, *sorted(self.extenders.get((entry.module, entry.function), ()))]


def cli_modules() -> dict[str, Path]:
    """Every module that may add commands: ``cli/commands.py`` and each feature's ``cli``."""
    found = {f"{ROOT_MODULE}.commands": ROOT / "cli" / "commands.py"}
    for package in sorted(ROOT.iterdir()):
        if package.name == "cli" or not (package / "__init__.py").exists():
            continue
        for path, module in (
            (package / "cli.py", f"{PACKAGE}.{package.name}.cli"),
            (package / "cli" / "__init__.py", f"{PACKAGE}.{package.name}.cli"),
        ):
            if path.exists():
                found[module] = path
    return found


@functools.cache
def build() -> Index:
    index = Index()
    modules = cli_modules()
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        _read(index, module, tree, set(modules))
    return index


def _read(index: Index, module: str, tree: ast.Module, cli: set[str]) -> None:
    """Add what ``module`` declares: commands on the root group, and groups of the other
    ``cli`` modules (the names of ``cli``) that it adds commands to."""
    roots: set[str] = set()  # local names of the root group
    groups: dict[str, tuple[str, str]] = {}  # local name → (module, function) of a foreign group
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                local = alias.asname or alias.name
                if node.module == ROOT_MODULE and alias.name == "main":
                    roots.add(local)
                elif node.module in cli:
                    groups[local] = (node.module, alias.name)
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = _attached_to(decorator)
            if target is None:
                continue
            owner, call = target
            if owner in roots:
                entry = _entry(module, node, call)
                index.commands[entry.name] = entry
            elif owner in groups:
                index.extenders.setdefault(groups[owner], set()).add(module)


def _attached_to(decorator: ast.expr) -> tuple[str, ast.Call] | None:
    """``@owner.command(...)`` or ``@owner.group(...)``: the owner's local name and the call."""
    if (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in ("command", "group")
        and isinstance(decorator.func.value, ast.Name)
    ):
        return decorator.func.value.id, decorator
    return None


def _entry(module: str, node: ast.FunctionDef, call: ast.Call) -> Entry:
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    name = None
    if call.args and isinstance(call.args[0], ast.Constant):
        name = call.args[0].value
    elif isinstance(keywords.get("name"), ast.Constant):
        name = keywords["name"].value
    if name is None:
        # click's own rule for a name taken from the function.
        name = node.name.lower().replace("_", "-")
        left, sep, suffix = name.rpartition("-")
        if sep and suffix in {"command", "cmd", "group", "grp"}:
            name = left

    def constant(key: str) -> object:
        value = keywords.get(key)
        return value.value if isinstance(value, ast.Constant) else None

    return Entry(
        name=name,
        module=module,
        function=node.name,
        help=constant("help") or ast.get_docstring(node, clean=False),
        short_help=constant("short_help"),  # type: ignore[arg-type]
        hidden=bool(constant("hidden")),
    )
