"""``nproxy backup create`` and ``nproxy backup restore`` (DESIGN 4.11).

A backup made while the app keeps serving writes, restored the way the README tells the
operator (a fresh database, a fresh bucket or folder, ``backup restore --yes``, ``db upgrade``,
start), holds the same rows in every table as the snapshot it was made from and byte-identical
objects; the restored app serves a restored user's image. Anything but an empty database and
storage, a damaged backup or a missing ``--yes`` is refused with one line, changing nothing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from zope.interface.verify import verifyObject

import cli_runner
from apiclient import ApiClient
from backup_support import (
    Site,
    all_objects,
    dsn,
    fill,
    one_line,
    png,
    run_nproxy,
    storage_keys,
    table_rows,
)
from generation_support import LOGGING_INI, Process
from nproxy_core.backup.services import knows_secret, verify_backup
from nproxy_core.config import normalize_settings
from nproxy_core.migrations import APPLIED_TABLE, BOOKKEEPING
from nproxy_core.storage import IStorage, make_storage

ROOT = Path(__file__).resolve().parents[2]


def only_backup(folder: Path) -> Path:
    [made] = [p for p in folder.iterdir() if p.is_dir()]
    assert made.name.startswith("nproxy-") and (made / "manifest.json").is_file()
    return made


def backup_while_serving(site: Site, writer: Any, backups: Path) -> tuple[dict, set[str], Path]:
    """Fill the site, keep a writer busy, and back up as of a snapshot held here: the rows that
    snapshot sees (what the backup must hold), the storage keys they name, the backup."""
    fill(site)
    busy = writer(site)
    busy.wait_for_rounds(1)
    with psycopg.connect(dsn(site.settings["sqlalchemy.url"])) as held:
        held.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        held.read_only = True
        snapshot = held.execute("SELECT pg_export_snapshot()").fetchone()[0]
        # Writes commit after the snapshot, and go on while the backup runs.
        busy.wait_for_rounds(busy.rounds + 1)
        result = run_nproxy(
            site.ini(), "backup", "create", str(backups), "--keep", "14", "--snapshot", snapshot
        )
        assert result.exit_code == 0, result.output
        assert "wrote " in result.output
        expected = table_rows(held)
        referenced = storage_keys(held)
    busy.wait_for_rounds(busy.rounds + 1)
    busy.stop()
    return expected, referenced, only_backup(backups)


def restore_as_the_readme_says(site: Site, made: Path, url: str, **storage: str) -> dict:
    """Fresh database and storage are made by the caller; restore, then migrate."""
    settings = {**site.settings, "sqlalchemy.url": url, **storage}
    ini = site.ini("restored.ini", **settings)
    restored = run_nproxy(ini, "backup", "restore", str(made), "--yes")
    assert restored.exit_code == 0, restored.output
    assert f"restored {made.name}" in restored.output
    upgraded = run_nproxy(ini, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    return settings


def check_round_trip(
    site: Site, expected: dict, referenced: set[str], settings: dict, make_app: Any
) -> None:
    with psycopg.connect(dsn(settings["sqlalchemy.url"])) as conn:
        restored = table_rows(conn)
    assert sorted(restored) == sorted(expected)
    for table, rows in expected.items():
        assert restored[table] == rows, f"table {table} differs after restore"
    assert len(expected["users"]) >= 4 and len(expected["payments"]) >= 4
    assert len(referenced) >= 12  # 3 uploads and 9 images of fill(), and the writer's
    # The app went on writing: the source moved on from the snapshot.
    with psycopg.connect(dsn(site.settings["sqlalchemy.url"])) as conn:
        assert table_rows(conn)["users"] != expected["users"]

    source = all_objects(site.storage())
    objects = all_objects(make_storage(settings))
    assert referenced <= objects.keys()
    for key, data in objects.items():
        assert data == source[key], f"object {key} differs after restore"

    # Start again: the app on what was restored serves a restored user's upload.
    app = make_app(**{key.replace(".", "__"): value for key, value in settings.items()})
    api = ApiClient(app)
    assert api.login("filled0@example.com").status_int == 200
    with psycopg.connect(dsn(settings["sqlalchemy.url"])) as conn:
        (upload_id,) = conn.execute(
            "SELECT u.id FROM uploads u JOIN users ON users.id = u.user_id "
            "WHERE users.email = 'filled0@example.com'"
        ).fetchone()
    answer = app.get(f"/media/{upload_id}", status="*")
    if answer.status_int == 302:
        body = httpx.get(answer.location, timeout=30).content
    else:
        assert answer.status_int == 200, answer.status
        body = answer.body
    assert body == png(0)


@pytest.mark.slow
def test_a_backup_made_while_serving_restores_to_the_same_rows_and_files_local(
    make_site, writer, fresh_database, make_app, tmp_path
):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    expected, referenced, made = backup_while_serving(site, writer, tmp_path / "backups")
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["storage"]["missing"] == []
    assert {t: len(expected[t]) for t in expected if t not in BOOKKEEPING} == {
        t: entry["rows"] for t, entry in manifest["database"]["tables"].items()
    }

    url = fresh_database()
    # An empty schema is empty too: compose's migrate service may have run before the restore.
    upgraded = run_nproxy(site.ini("pre.ini", **{"sqlalchemy.url": url}), "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    settings = restore_as_the_readme_says(
        site, made, url, **{"storage.local.path": str(tmp_path / "restored-media")}
    )
    check_round_trip(site, expected, referenced, settings, make_app)


@pytest.mark.slow
def test_a_backup_made_while_serving_restores_to_the_same_rows_and_files_s3(
    make_site, writer, fresh_database, make_app, s3_server, tmp_path
):
    site = make_site(**s3_server.settings(s3_server.new_bucket()))
    expected, referenced, made = backup_while_serving(site, writer, tmp_path / "backups")

    fresh_bucket = s3_server.new_bucket()
    settings = restore_as_the_readme_says(
        site, made, fresh_database(), **s3_server.settings(fresh_bucket)
    )
    check_round_trip(site, expected, referenced, settings, make_app)
    # Each object keeps its content type: presigned URLs serve it as stored.
    client = s3_server.client()
    for key in list(referenced)[:3]:
        source = client.head_object(Bucket=site.settings["storage.s3.bucket"], Key=key)
        copy = client.head_object(Bucket=fresh_bucket, Key=key)
        assert copy["ContentType"] == source["ContentType"]


@pytest.mark.slow
def test_a_backup_without_a_given_snapshot_is_consistent_under_writes(
    make_site, writer, fresh_database, tmp_path
):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    fill(site)
    with psycopg.connect(dsn(site.settings["sqlalchemy.url"])) as conn:
        before = table_rows(conn)["users"]
    busy = writer(site)
    busy.wait_for_rounds(1)
    result = run_nproxy(site.ini(), "backup", "create", str(tmp_path / "backups"))
    assert result.exit_code == 0, result.output
    busy.stop()
    made = only_backup(tmp_path / "backups")

    settings = restore_as_the_readme_says(
        site, made, fresh_database(), **{"storage.local.path": str(tmp_path / "restored")}
    )
    manifest = json.loads((made / "manifest.json").read_text())
    with psycopg.connect(dsn(settings["sqlalchemy.url"])) as conn:
        restored = table_rows(conn)
        referenced = storage_keys(conn)
    for table, entry in manifest["database"]["tables"].items():
        assert len(restored[table]) == entry["rows"], table
    assert set(before) <= set(restored["users"])
    # Every object a restored row names is there, as it was stored.
    objects = all_objects(make_storage(settings))
    source = all_objects(site.storage())
    assert referenced <= objects.keys()
    assert all(objects[key] == source[key] for key in referenced)


# --- refusals ------------------------------------------------------------------------------------


def small_backup(site: Site, folder: Path) -> Path:
    customer = site.customer("only@example.com")
    site.upload(customer, seed=7)
    result = run_nproxy(site.ini(), "backup", "create", str(folder))
    assert result.exit_code == 0, result.output
    return only_backup(folder)


def test_restore_refuses_without_yes_and_changes_nothing(make_site, fresh_database, tmp_path):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    made = small_backup(site, tmp_path / "backups")
    url = fresh_database()
    target = tmp_path / "empty-media"
    ini = site.ini("t.ini", **{"sqlalchemy.url": url, "storage.local.path": str(target)})

    line = one_line(run_nproxy(ini, "backup", "restore", str(made)))
    assert "--yes" in line
    with psycopg.connect(dsn(url)) as conn:
        assert table_rows(conn) == {}
    assert not target.exists()


def test_restore_refuses_a_database_with_rows_and_changes_nothing(make_site, tmp_path):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    made = small_backup(site, tmp_path / "backups")
    target = tmp_path / "empty-media"
    # The live database itself: it has rows.
    ini = site.ini("t.ini", **{"storage.local.path": str(target)})
    with psycopg.connect(dsn(site.settings["sqlalchemy.url"])) as conn:
        before = table_rows(conn)

    line = one_line(run_nproxy(ini, "backup", "restore", str(made), "--yes"))
    assert "the database is not empty: table" in line and "has rows" in line
    with psycopg.connect(dsn(site.settings["sqlalchemy.url"])) as conn:
        assert table_rows(conn) == before
    assert not target.exists()


def test_restore_refuses_a_storage_with_objects_and_changes_nothing(
    make_site, fresh_database, s3_server, tmp_path
):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    made = small_backup(site, tmp_path / "backups")

    # A folder holding a file.
    url = fresh_database()
    folder = tmp_path / "used-media"
    (folder / "uploads/1").mkdir(parents=True)
    (folder / "uploads/1/old.png").write_bytes(b"old")
    ini = site.ini("t.ini", **{"sqlalchemy.url": url, "storage.local.path": str(folder)})
    line = one_line(run_nproxy(ini, "backup", "restore", str(made), "--yes"))
    assert line.endswith("the storage is not empty: it holds uploads/1/old.png")
    assert [p.name for p in folder.rglob("*") if p.is_file()] == ["old.png"]
    with psycopg.connect(dsn(url)) as conn:
        assert table_rows(conn) == {}

    # A bucket holding an object.
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="generations/1/x/0.png", Body=b"old")
    ini = site.ini("s3.ini", **{"sqlalchemy.url": url, **s3_server.settings(bucket)})
    line = one_line(run_nproxy(ini, "backup", "restore", str(made), "--yes"))
    assert line.endswith("the storage is not empty: it holds generations/1/x/0.png")
    assert s3_server.keys(bucket) == ["generations/1/x/0.png"]
    with psycopg.connect(dsn(url)) as conn:
        assert table_rows(conn) == {}


def test_restore_refuses_a_damaged_backup_and_changes_nothing(make_site, fresh_database, tmp_path):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    made = small_backup(site, tmp_path / "backups")
    url = fresh_database()
    target = tmp_path / "empty-media"
    ini = site.ini("t.ini", **{"sqlalchemy.url": url, "storage.local.path": str(target)})
    [image] = list((made / "objects").rglob("*.png"))
    data = bytearray(image.read_bytes())
    data[-1] ^= 1
    image.write_bytes(bytes(data))

    line = one_line(run_nproxy(ini, "backup", "restore", str(made), "--yes"))
    assert "is damaged" in line and "does not match its checksum" in line
    assert "is damaged" in one_line(run_nproxy(ini, "backup", "verify", str(made)))
    with psycopg.connect(dsn(url)) as conn:
        assert table_rows(conn) == {}
    assert not target.exists()


def test_restore_refuses_a_backup_from_a_newer_schema(make_site, fresh_database, tmp_path):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    made = small_backup(site, tmp_path / "backups")
    manifest_path = made / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["database"]["migration_heads"] = ["9999_from_the_future"]
    manifest_path.write_text(json.dumps(manifest))
    url = fresh_database()
    ini = site.ini("t.ini", **{"sqlalchemy.url": url})

    line = one_line(run_nproxy(ini, "backup", "restore", str(made), "--yes"))
    assert "9999_from_the_future, unknown to nproxy" in line
    with psycopg.connect(dsn(url)) as conn:
        assert table_rows(conn) == {}


def test_restore_refuses_a_schema_newer_than_the_backup_and_changes_nothing(
    make_site, fresh_database, tmp_path
):
    """compose's migrate service, run before the restore on a newer nproxy, leaves a schema
    past an older backup's revision: refused (the README restores with --no-deps)."""
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    made = small_backup(site, tmp_path / "backups")
    manifest_path = made / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["database"]["migration_heads"] = ["0011_worker_liveness"]
    manifest_path.write_text(json.dumps(manifest))
    url = fresh_database()
    ini = site.ini("t.ini", **{"sqlalchemy.url": url, "storage.local.path": str(tmp_path / "e")})
    assert run_nproxy(ini, "db", "upgrade").exit_code == 0
    with psycopg.connect(dsn(url)) as conn:
        before = table_rows(conn)

    line = one_line(run_nproxy(ini, "backup", "restore", str(made), "--yes"))
    assert "past the backup's 0011_worker_liveness" in line
    with psycopg.connect(dsn(url)) as conn:
        assert table_rows(conn) == before


def test_restore_says_when_the_backup_needs_an_older_secret(make_site, fresh_database, tmp_path):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    made = small_backup(site, tmp_path / "backups")
    old = site.settings["nproxy.secret"]
    new = "another-secret-" + "y" * 40

    ini = site.ini(
        "new.ini",
        **{
            "sqlalchemy.url": fresh_database(),
            "storage.local.path": str(tmp_path / "a"),
            "nproxy.secret": new,
        },
    )
    result = run_nproxy(ini, "backup", "restore", str(made), "--yes")
    assert result.exit_code == 0, result.output
    assert "made with another NPROXY_SECRET" in result.stderr
    assert old not in result.output

    # With the old secret kept readable (NPROXY_SECRET_PREVIOUS), nothing to say.
    rotated = normalize_settings({**site.settings, "nproxy.secret": new}, {})
    assert not knows_secret(rotated, verify_backup(made))
    rotated = normalize_settings(rotated, {"NPROXY_SECRET_PREVIOUS": old})
    assert knows_secret(rotated, verify_backup(made))


# --- keeping, listing, compose ---------------------------------------------------------------


def test_keep_leaves_the_newest_backups_and_list_says_how_old(make_site, tmp_path):
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    folder = tmp_path / "backups"
    made = []
    for _ in range(3):
        result = run_nproxy(site.ini(), "backup", "create", str(folder), "--keep", "2")
        assert result.exit_code == 0, result.output
        made.append(result.output.split()[1])
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(m).name for m in made[1:])

    listed = run_nproxy(site.ini(), "backup", "list", str(folder), "--max-age", "1")
    assert listed.exit_code == 0, listed.output
    assert len(listed.output.splitlines()) == 2
    empty = run_nproxy(site.ini(), "backup", "list", str(tmp_path / "none"), "--max-age", "1")
    assert "no backup in" in one_line(empty)


def test_compose_backs_up_daily_with_the_app_image_and_keeps_fourteen():
    services = yaml.safe_load((ROOT / "compose.yml").read_text())["services"]
    backup = services["backup"]
    assert backup["image"] == "nproxy:latest"
    assert backup["command"] == [
        "nproxy",
        "backup",
        "create",
        "/backups",
        "--keep",
        "14",
        "--daily",
    ]
    # The app's own settings: the same database and storage the app uses.
    assert backup["environment"] == services["web"]["environment"]
    assert backup["env_file"] == services["web"]["env_file"]
    assert "backups:/backups" in backup["volumes"]
    assert backup["healthcheck"]["test"][:4] == ["CMD", "nproxy", "backup", "list"]
    # The old pg_dump script (no images, a pg_dump tied to the server's version) is gone.
    assert not (ROOT / "deploy" / "backup.sh").exists()


@pytest.mark.slow
def test_the_compose_command_backs_up_at_once_and_its_healthcheck_passes(make_site, tmp_path):
    """``nproxy backup create /backups --keep 14 --daily`` as a process, as compose runs it."""
    site = make_site(**{"storage.local.path": str(tmp_path / "media")})
    site.upload(site.customer("daily@example.com"), seed=3)
    ini = cli_runner.write_ini(tmp_path, site.settings, "daily.ini", extra=LOGGING_INI)
    folder = tmp_path / "backups"
    healthcheck = ("-c", str(ini), "backup", "list", str(folder), "--max-age", "26")
    assert "no backup in" in cli_runner.one_line_error(cli_runner.nproxy(*healthcheck))

    service = Process(
        ["-c", str(ini), "backup", "create", str(folder), "--keep", "14", "--daily"],
        tmp_path / "daily.log",
        tmp_path,
    )
    try:
        service.wait_for_log("wrote ")
        listed = cli_runner.nproxy(*healthcheck)
        assert listed.returncode == 0, listed.stderr
        (line,) = listed.stdout.splitlines()
        assert line.startswith("nproxy-") and "1 objects" in line
    finally:
        service.stop()
    assert service.popen.returncode != 0  # stopped, not finished: it runs until told to stop


def test_storage_backends_provide_every_method_of_the_interface(s3_server, tmp_path):
    verifyObject(IStorage, make_storage({"storage.local.path": str(tmp_path)}))
    verifyObject(IStorage, make_storage(s3_server.settings(s3_server.new_bucket())))


# --- SQLite, the embedded default ------------------------------------------------------------


def sqlite_rows(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))  # noqa: S608
            for table in tables
            if table != APPLIED_TABLE
        }
    finally:
        conn.close()


def test_a_sqlite_backup_restores_to_the_same_rows_and_files(make_app, base_settings, tmp_path):
    source = tmp_path / "dev" / "nproxy.sqlite3"
    settings = {
        **base_settings,
        "sqlalchemy.url": f"sqlite:///{source}",
        "storage.local.path": str(tmp_path / "media"),
    }
    ini = cli_runner.write_ini(tmp_path, settings, "sqlite.ini")
    assert run_nproxy(ini, "db", "upgrade").exit_code == 0
    api = ApiClient(make_app(**{key.replace(".", "__"): v for key, v in settings.items()}))
    assert api.register("sqlite@example.com").status_int in (200, 201)
    answer = api.post("/api/v1/uploads", upload_files=[("file", "in.png", png(5))])
    assert answer.status_int == 201, answer.text

    result = run_nproxy(ini, "backup", "create", str(tmp_path / "backups"))
    assert result.exit_code == 0, result.output
    made = only_backup(tmp_path / "backups")

    # Into the database it came from: refused, it has rows.
    line = one_line(run_nproxy(ini, "backup", "restore", str(made), "--yes"))
    assert "the database is not empty: table" in line
    target = tmp_path / "restored" / "nproxy.sqlite3"
    restored = {
        **settings,
        "sqlalchemy.url": f"sqlite:///{target}",
        "storage.local.path": str(tmp_path / "restored-media"),
    }
    done = run_nproxy(
        cli_runner.write_ini(tmp_path, restored, "restored.ini"),
        "backup",
        "restore",
        str(made),
        "--yes",
    )
    assert done.exit_code == 0, done.output

    assert sqlite_rows(target) == sqlite_rows(source)
    assert sqlite_rows(target)["users"] and sqlite_rows(target)["uploads"]
    objects = all_objects(make_storage(restored))
    assert objects == all_objects(make_storage(settings)) and len(objects) == 1
