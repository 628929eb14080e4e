"""supabase/migrations/ is generated from sql/ (scripts/gen-supabase-migrations) and must not drift:
each table migration copied once, in version order, and the newest file the routines of today."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from wf.catalog import load
from wf.supabase_migrations import preflight_sql, problems, routines_sql, write

REPO = Path(__file__).resolve().parents[2]


def test_supabase_migrations_are_what_sql_generates():
    assert problems(load(), REPO / "supabase/migrations") == [], "run scripts/gen-supabase-migrations"


def test_a_changed_routine_adds_a_newer_routines_migration_and_keeps_the_old_ones(tmp_path):
    folder = tmp_path / "migrations"
    catalog = load()
    first = write(catalog, folder)
    assert [p.name.split("_wf_", 1)[1] for p in first] == [
        "preflight.sql", *(m.name for m in catalog.migrations), "routines.sql"]
    assert write(catalog, folder) == []
    changed = dataclasses.replace(catalog, access=catalog.access + "\n-- edited\n")
    assert problems(changed, folder) == [f"{first[-1].name} is not the routines of sql/ today"]
    [second] = write(changed, folder)
    assert second.name > first[-1].name and second.read_text() == routines_sql(changed)
    assert first[-1].exists() and problems(changed, folder) == []


def test_the_preflight_is_written_before_the_oldest_wf_migration_of_a_folder_that_lacks_it(tmp_path):
    folder = tmp_path / "migrations"
    write(load(), folder)
    [preflight] = folder.glob("*_wf_preflight.sql")
    preflight.unlink()
    assert problems(load(), folder) == ["there is no preflight migration (*_wf_preflight.sql)"]
    [again] = write(load(), folder)
    assert again.name < min(p.name for p in folder.glob("*_wf_*.sql") if p != again)
    assert again.read_text() == preflight_sql() and problems(load(), folder) == []
