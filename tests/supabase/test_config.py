"""supabase/config.toml: a valid Supabase CLI config that declares every edge function."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUPABASE = REPO / "supabase"


def config() -> dict:
    return tomllib.loads((SUPABASE / "config.toml").read_text())


def function_folders() -> set[str]:
    return {p.parent.name for p in (SUPABASE / "functions").glob("*/index.ts") if not p.parent.name.startswith("_")}


def test_project_and_database():
    cfg = config()
    assert cfg["project_id"] == "wf"
    assert cfg["db"]["major_version"] == 15


def test_every_function_folder_is_declared_and_every_declared_function_exists():
    declared = set(config()["functions"])
    assert declared == function_folders(), (
        "declare each supabase/functions/<name> in supabase/config.toml: verify_jwt = false for a function "
        "the worker calls, enabled = false for a local test fixture")


def test_deployed_functions_check_their_own_tokens_and_use_the_shared_import_map():
    for name, fn in config()["functions"].items():
        if not fn.get("enabled", True):
            continue
        assert fn["verify_jwt"] is False, name
        assert (SUPABASE / fn["import_map"]).resolve() == SUPABASE / "functions/deno.json", name
