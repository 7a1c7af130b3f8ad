"""``nproxy keys`` and ``nproxy proxies`` in a subprocess, as an operator runs them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cli_runner import NPROXY, nproxy, one_line_error, write_ini
from nproxy_core.audit.models import AuditEntry
from nproxy_core.keypool.models import KeyState, ProviderKey

pytestmark = pytest.mark.slow

SECRET = "AIzaSyTESTtestTESTtestTESTtest0x9Q2"


@pytest.fixture
def ini(tmp_path: Path, base_settings: dict[str, Any], db: Any) -> str:
    settings = {**base_settings, "nproxy.providers": "demo nanobanana"}
    return str(write_ini(tmp_path, settings))


def run(ini: str, *args: str, stdin: str = "") -> Any:
    return nproxy("-c", ini, *args, stdin=stdin)


def assert_one_line_error(result: Any, *words: str) -> None:
    line = one_line_error(result)
    for word in words:
        assert word in line, line


def test_keys_add_list_disable_restore(ini, db):
    added = run(
        ini,
        "keys",
        "add",
        "--provider",
        "nanobanana",
        "--label",
        "main",
        "--billing-group",
        "acme",
        stdin=SECRET + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert "AIza…x9Q2" in added.stdout and SECRET not in added.stdout

    listed = run(ini, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [key] = json.loads(listed.stdout)
    assert key["provider"] == "nanobanana" and key["label"] == "main"
    assert key["state"] == "active" and key["consecutive_failures"] == 0
    assert key["secret"] == "AIza…x9Q2" and key["billing_group"] == "acme"
    assert key["cooldown_until"] is None and key["proxy"] is None
    assert SECRET not in listed.stdout

    table = run(ini, "keys", "list")
    assert "AIza…x9Q2" in table.stdout and "active" in table.stdout

    disabled = run(ini, "keys", "disable", str(key["id"]))
    assert disabled.returncode == 0, disabled.stderr
    assert db.scalars(sa.select(ProviderKey)).one().state == KeyState.DISABLED
    db.rollback()

    restored = run(ini, "keys", "restore", str(key["id"]))
    assert restored.returncode == 0, restored.stderr
    assert_one_line_error(run(ini, "keys", "restore", str(key["id"])), "already active")
    assert_one_line_error(
        run(ini, "keys", "add", "--provider", "nanobanana", stdin=SECRET), "already in the pool"
    )
    assert db.scalars(sa.select(ProviderKey)).one().state == KeyState.ACTIVE

    entries = db.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == ["key.add", "key.disable", "key.restore"]
    assert {e.surface for e in entries} == {"cli"}
    assert entries[2].before["state"] == "disabled" and entries[2].after["state"] == "active"
    assert all(SECRET not in json.dumps([e.before, e.after]) for e in entries)


def test_keys_add_with_a_proxy_and_proxies_commands(ini, db):
    added = run(ini, "proxies", "add", "socks5://user:pw@127.0.0.1:1080", "--label", "eu")
    assert added.returncode == 0, added.stderr
    assert "pw" not in added.stdout

    key = run(
        ini,
        "keys",
        "add",
        "--provider",
        "demo",
        "--proxy",
        "http://127.0.0.1:3128",
        stdin="demo-key-0123456789\n",
    )
    assert key.returncode == 0, key.stderr

    proxies = json.loads(run(ini, "proxies", "list", "--json").stdout)
    assert [(p["url"], p["label"]) for p in proxies] == [
        ("socks5://user:***@127.0.0.1:1080", "eu"),
        ("http://127.0.0.1:3128", None),
    ]
    assert proxies[0]["consecutive_failures"] == 0
    assert db.scalars(sa.select(ProviderKey)).one().proxy.url == "http://127.0.0.1:3128"
    assert "eu" in run(ini, "proxies", "list").stdout
    actions = db.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["proxy.add", "proxy.add", "key.add"]


ERROR_CASES = [
    (("keys", "add", "--provider", "nosuch"), SECRET, ("unknown provider", "nosuch")),
    (("keys", "add", "--provider", "nanobanana"), "\n", ("empty",)),
    (("keys", "restore", "999"), "", ("no provider key with id 999",)),
    (("proxies", "add", "ftp://127.0.0.1:21"), "", ("http://", "socks5://")),
]


def test_errors_are_one_line_and_change_nothing(ini, db):
    # Started together: each command pays the app's start-up, and they are independent.
    running = [
        (
            subprocess.Popen(
                [*NPROXY, "-c", ini, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            stdin,
            words,
        )
        for args, stdin, words in ERROR_CASES
    ]
    for process, stdin, words in running:
        stdout, stderr = process.communicate(stdin, timeout=60)
        assert_one_line_error(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), *words
        )
    assert db.scalar(sa.select(sa.func.count()).select_from(ProviderKey)) == 0
    assert db.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0


def test_keys_list_shows_the_estimated_spend_of_each_key_and_each_project(ini, db):
    for n, project in enumerate(("gcp-a", "gcp-a", "gcp-b", None)):
        extra = ["--project", project] if project else []
        secret = f"AIzaSyTESTtestTESTtestTESTtest{n}spend"
        added = run(ini, "keys", "add", "--provider", "nanobanana", *extra, stdin=secret)
        assert added.returncode == 0, added.stderr
    spends = {1: "0.039", 2: "0.078", 3: "1.5", 4: "0.2"}
    for key_id, spend in spends.items():
        db.execute(
            sa.update(ProviderKey).where(ProviderKey.id == key_id).values(estimated_spend=spend)
        )
    # gcp-b is resting after a rate limit: its only key in service is cooling down.
    resting = "2099-01-01T08:00:00+00:00"
    db.execute(
        sa.update(ProviderKey)
        .where(ProviderKey.id == 3)
        .values(state=KeyState.COOLDOWN, cooldown_until=dt.datetime.fromisoformat(resting))
    )
    db.commit()

    listed = {k["id"]: k for k in json.loads(run(ini, "keys", "list", "--json").stdout)}
    assert {k: float(v["estimated_spend"]) for k, v in listed.items()} == {
        k: float(v) for k, v in spends.items()
    }
    assert float(listed[1]["project_estimated_spend"]) == pytest.approx(0.117)
    assert listed[1]["project_estimated_spend"] == listed[2]["project_estimated_spend"]
    assert float(listed[4]["project_estimated_spend"]) == 0.2  # its own project
    assert listed[3]["project_rests_until"] == resting
    assert listed[1]["project_rests_until"] is None

    lines = run(ini, "keys", "list").stdout.splitlines()
    assert "spend" in lines[0] and "$1.50" in lines[3]
    [a] = [line for line in lines if line.startswith("gcp-a ")]
    [b] = [line for line in lines if line.startswith("gcp-b ")]
    assert a.split()[2:5] == ["2", "2", "$0.12"] and a.endswith("-")
    assert b.split()[2:5] == ["1", "1", "$1.50"] and b.endswith("2099-01-01T08:00:00")
