"""supabase/migrations/ is generated from sql/ (scripts/gen-supabase-migrations) and must not drift."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_supabase_migrations_are_identical_to_sql_migrations():
    sql = sorted((REPO / "sql").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    generated = sorted((REPO / "supabase/migrations").glob("*_wf_*.sql"))
    assert [p.name[:4] + "_" + p.name[5:] for p in sql] == [
        p.name[10:14] + "_" + p.name.split("_wf_", 1)[1] for p in generated
    ], "run scripts/gen-supabase-migrations"
    for source, copy in zip(sql, generated, strict=True):
        assert source.read_text() == copy.read_text(), f"{copy.name} differs: run scripts/gen-supabase-migrations"
