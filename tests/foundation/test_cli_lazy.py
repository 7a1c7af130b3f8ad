"""``nproxy --help`` names every command without importing a feature: the command index read
from the features' sources must agree with what their modules really register."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import textwrap

import click
from click.testing import CliRunner

from nproxy_core.cli import index, load_commands, main


def test_the_index_names_every_command_its_module_registers():
    load_commands()
    entries = index.build().commands
    assert sorted(entries) == sorted(main.commands)
    for name, command in main.commands.items():
        entry = entries[name]
        assert command.callback.__module__ == entry.module, name
        placeholder = click.Command(
            name, help=entry.help, short_help=entry.short_help, hidden=entry.hidden
        )
        assert placeholder.get_short_help_str(60) == command.get_short_help_str(60), name
        assert placeholder.hidden == command.hidden


def test_running_a_group_imports_every_module_that_adds_to_it():
    """``billing/cli.py`` adds ``users grant-cycle`` and ``users list`` to the group of
    ``accounts/cli.py``: asking for ``users`` must import both."""
    load_commands()
    built = index.build()
    for name, command in main.commands.items():
        modules = set(built.modules_for(name))
        for sub in getattr(command, "commands", {}).values():
            assert sub.callback.__module__ in modules, (name, sub.name)
    assert "nproxy_core.billing.cli" in built.modules_for("users")


HEAVY = ("pyramid", "sqlalchemy", "celery", "alembic", "boto3", "telegram")


def loaded_by(*args: str) -> tuple[list[str], str]:
    """The nproxy_core modules and heavy libraries ``nproxy ARGS`` imports, in a fresh
    process, and what it printed."""
    probe = textwrap.dedent(
        f"""
        import sys
        from nproxy_core.cli import main
        try:
            main({list(args)!r})
        except SystemExit:
            pass
        loaded = sorted(
            m for m in sys.modules
            if m.startswith("nproxy_core.") or m.split(".")[0] in {HEAVY!r}
        )
        print("LOADED", " ".join(loaded))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    printed, loaded = done.stdout.split("LOADED", 1)
    return loaded.split(), printed


def test_help_imports_no_feature_and_lists_every_command():
    loaded, printed = loaded_by("--help")
    assert loaded == ["nproxy_core.cli", "nproxy_core.cli.context", "nproxy_core.cli.index"]
    listed = printed.split("Commands:", 1)[1]
    for name in index.build().commands:
        assert f"\n  {name} " in listed, name


def test_keys_help_imports_only_its_own_cli_module():
    loaded, printed = loaded_by("keys", "--help")
    assert [m for m in loaded if not m.startswith("nproxy_core.cli")] == [
        "nproxy_core.keypool",
        "nproxy_core.keypool.cli",
    ]
    assert "delete" in printed and "edit" in printed


def test_version_is_the_installed_distributions():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"nproxy {importlib.metadata.version('nproxy')}"


def test_the_index_reads_names_help_and_extensions_as_click_would():
    source = textwrap.dedent(
        '''
        import click
        from nproxy_core.cli import main
        from nproxy_core.accounts.cli import users as accounts_users

        @main.group()
        def backup_group():
            """Backups.

            More text."""

        @main.command("restore-all", short_help="Short.", hidden=True)
        def restore():
            """Long help."""

        @main.command()
        def do_thing_cmd():
            """Does a thing."""

        @accounts_users.command("purge")
        def purge():
            """Purge."""
        '''
    )
    built = index.Index()
    index._read(built, "nproxy_core.example.cli", ast.parse(source), {"nproxy_core.accounts.cli"})
    assert sorted(built.commands) == ["backup", "do-thing", "restore-all"]
    restore = built.commands["restore-all"]
    assert (restore.short_help, restore.hidden, restore.function) == ("Short.", True, "restore")
    assert built.commands["backup"].help.startswith("Backups.")
    assert built.extenders == {("nproxy_core.accounts.cli", "users"): {"nproxy_core.example.cli"}}


def test_an_unknown_command_is_refused_after_looking_everywhere():
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output
