"""A store's schema is checked against the migrations without importing alembic (okr_store.opening):
the heads read from the migration files are alembic's own, and a store behind them is not at head."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from okr_store.opening import MIGRATIONS, at_head, migration_heads, stored_heads
from okr_store.store import Store, create_engine


def test_the_heads_read_from_the_files_are_alembics() -> None:
    heads = migration_heads()
    assert heads == set(ScriptDirectory(str(MIGRATIONS)).get_heads())
    assert len(heads) == 1


def test_a_merge_of_two_branches_has_one_head_and_an_unmerged_branch_two(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (tmp_path / "script.py.mako").write_text("")
    files = {
        "a": "revision = 'a'\ndown_revision = None\n",
        "b": 'revision = "b"\ndown_revision = "a"\n',
        "c": 'revision: str = "c"\ndown_revision: str | None = "a"\n',
        "m": '"""Merge.\n\nRevision ID: m\nRevises: b, c\n"""\nrevision = "m"\ndown_revision = ("b", "c")\n',
    }
    for name, text in files.items():
        (versions / f"{name}.py").write_text(text + "branch_labels = None\ndepends_on = None\n")
    assert migration_heads(versions) == set(ScriptDirectory(str(tmp_path)).get_heads()) == {"m"}
    (versions / "m.py").unlink()
    assert migration_heads(versions) == set(ScriptDirectory(str(tmp_path)).get_heads()) == {"b", "c"}


def test_a_store_is_at_head_once_migrated_and_not_before_or_when_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = create_engine(url)
    try:
        assert not at_head(engine)  # an empty database: no alembic_version table
        Store(url).close()
        assert at_head(engine)
        with engine.begin() as conn:
            assert stored_heads(conn) == migration_heads()
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
        assert not at_head(engine)
    finally:
        engine.dispose()
