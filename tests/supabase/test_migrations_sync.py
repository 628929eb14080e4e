"""supabase/migrations/ is generated from sql/ (scripts/gen-supabase-migrations) and must not drift:
each table migration copied once, in version order, and the newest file the routines of today."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from wf.catalog import load
from wf.supabase_migrations import problems, routines_sql, write

REPO = Path(__file__).resolve().parents[2]


def test_supabase_migrations_are_what_sql_generates():
    assert problems(load(), REPO / "supabase/migrations") == [], "run scripts/gen-supabase-migrations"


def test_a_changed_routine_adds_a_newer_routines_migration_and_keeps_the_old_ones(tmp_path):
    folder = tmp_path / "migrations"
    catalog = load()
    first = write(catalog, folder)
    assert [p.name.split("_wf_", 1)[1] for p in first] == [*(m.name for m in catalog.migrations), "routines.sql"]
    assert write(catalog, folder) == []
    changed = dataclasses.replace(catalog, access=catalog.access + "\n-- edited\n")
    assert problems(changed, folder) == [f"{first[-1].name} is not the routines of sql/ today"]
    [second] = write(changed, folder)
    assert second.name > first[-1].name and second.read_text() == routines_sql(changed)
    assert first[-1].exists() and problems(changed, folder) == []
