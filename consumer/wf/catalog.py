"""The wf schema as code: what sql/ holds, read and checked before anything touches a database.

    sql/migrations/NNNN_name.sql  tables, columns, indexes, types, queues, backfills, drops of
                                  old signatures; forward-only, checksummed
    sql/functions/<name>.sql      one function wf.<name> per file, `create or replace`
    sql/views/<name>.sql          one view wf.<name> per file, `create or replace`
    sql/roles.sql                 wf's roles (cluster-wide); made first, at every install
    sql/access.sql                schema grants, RLS policies; re-applied every install, last

The installer (wf.install) and the Supabase migrations generator (`python -m wf.catalog`,
behind scripts/gen-supabase-migrations) both read the schema through this module, so the two
paths apply the same files in the same order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from wf.resources import sql_dir


class CatalogError(RuntimeError):
    """sql/ (or the database it meets) cannot be installed: the message names the file."""


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name, e.g. 0010_baseline.sql
    text: str
    # the released migrations this one replaces: a database that has all of them applied
    # records this one as applied without running it (a `-- squashes: 0001-0009` line)
    squashes: tuple[int, ...] = ()

    @property
    def checksum(self) -> str:
        return checksum(self.text)


@dataclass(frozen=True)
class Routine:
    kind: str  # "function" or "view"
    name: str  # wf.<name>
    path: str  # relative to sql/, e.g. functions/claim.sql: the key in wf.routines
    text: str
    depends_on: tuple[str, ...] = ()  # views: the other wf views it reads

    @property
    def checksum(self) -> str:
        return checksum(self.text)


@dataclass(frozen=True)
class Catalog:
    migrations: tuple[Migration, ...]
    functions: tuple[Routine, ...]  # by name
    views: tuple[Routine, ...]  # in dependency order: a view after the views it reads
    access: str
    roles: str

    @property
    def routines(self) -> tuple[Routine, ...]:
        return self.functions + self.views


_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_ROUTINE_NAME = re.compile(r"^[a-z][a-z0-9_]*\.sql$")
_SQUASHES = re.compile(r"^-- squashes: (\d{4})-(\d{4})\s*$", re.MULTILINE)
_CREATE = re.compile(
    r"\bcreate\s+(or\s+replace\s+)?(function|procedure|view|materialized\s+view)\s+([\w.\"]+)", re.IGNORECASE)
_DOLLAR_TAG = re.compile(r"\$[A-Za-z_][A-Za-z_0-9]*\$|\$\$")
_WF_NAME = re.compile(r"\bwf\.(\w+)")


def code_only(text: str) -> str:
    """The SQL text without comments, string literals and dollar-quoted bodies: what a file
    itself creates, not what its function bodies or comments mention."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif text[i] == "'":
            end = i + 1
            while end < n and not (text[end] == "'" and not text.startswith("\'\'", end)):
                end += 2 if text.startswith("\'\'", end) else 1
            i = end + 1
            out.append("''")
        elif text[i] == "$" and (tag := _DOLLAR_TAG.match(text, i)):
            end = text.find(tag.group(0), tag.end())
            i = n if end < 0 else end + len(tag.group(0))
            out.append(" $$ ")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _creates(text: str) -> list[tuple[str, str, bool]]:
    """(kind, qualified name, or replace) of each create function/view statement outside bodies."""
    return [(" ".join(m.group(2).lower().split()), m.group(3).replace('"', "").lower(), bool(m.group(1)))
            for m in _CREATE.finditer(code_only(text))]


def _read_migrations(root: Path) -> tuple[Migration, ...]:
    found: dict[int, Migration] = {}
    for path in sorted((root / "migrations").glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise CatalogError(f"sql/migrations/{path.name}: a migration is named NNNN_name.sql "
                               f"(four digits, lowercase name)")
        version = int(match.group(1))
        if version in found:
            raise CatalogError(f"sql/migrations/{path.name}: version {version:04d} is taken by "
                               f"{found[version].name}")
        text = path.read_text()
        creates = _creates(text)
        if creates:
            kind, name, _ = creates[0]
            raise CatalogError(f"sql/migrations/{path.name}: creates {kind} {name}; functions live in "
                               f"sql/functions/, views in sql/views/ (a migration may only drop them)")
        squashes: tuple[int, ...] = ()
        if m := _SQUASHES.search(text):
            squashes = tuple(range(int(m.group(1)), int(m.group(2)) + 1))
        found[version] = Migration(version, path.name, text, squashes)
    return tuple(found[v] for v in sorted(found))


def _read_routines(root: Path, kind: str) -> list[Routine]:
    folder = "functions" if kind == "function" else "views"
    routines = []
    for path in sorted((root / folder).glob("*.sql")):
        rel = f"{folder}/{path.name}"
        if not _ROUTINE_NAME.match(path.name):
            raise CatalogError(f"sql/{rel}: a routine file is named after its {kind}: <name>.sql, lowercase")
        name = path.stem
        text = path.read_text()
        creates = _creates(text)
        if len(creates) != 1:
            what = ", ".join(f"{k} {n}" for k, n, _ in creates) or f"no {kind}"
            raise CatalogError(f"sql/{rel}: a file holds exactly one {kind} (wf.{name}); it creates {what}")
        created_kind, created_name, or_replace = creates[0]
        if created_kind != kind or created_name != f"wf.{name}":
            raise CatalogError(f"sql/{rel}: creates {created_kind} {created_name}, but the file is for "
                               f"{kind} wf.{name}: name the file after what it creates")
        if not or_replace:
            raise CatalogError(f"sql/{rel}: write `create or replace {kind}`: the installer re-applies "
                               f"the file whenever it changes")
        routines.append(Routine(kind, name, rel, text))
    return routines


def _dependency_order(views: list[Routine]) -> tuple[Routine, ...]:
    names = {v.name for v in views}
    deps = {v.name: tuple(sorted(set(_WF_NAME.findall(code_only(v.text))) & names - {v.name})) for v in views}
    by_name = {v.name: Routine(v.kind, v.name, v.path, v.text, deps[v.name]) for v in views}
    ordered: list[Routine] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise CatalogError(f"sql/views/{name}.sql: views read each other in a circle: "
                               f"{' -> '.join((*chain, name))}")
        state[name] = "visiting"
        for dep in deps[name]:
            visit(dep, (*chain, name))
        state[name] = "done"
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name, ())
    return tuple(ordered)


def load(root: Path | None = None) -> Catalog:
    """Read and check sql/ (the installed package's, or root)."""
    root = root or sql_dir()
    functions = _read_routines(root, "function")
    views = _read_routines(root, "view")
    clash = {f.name for f in functions} & {v.name for v in views}
    if clash:
        raise CatalogError(f"sql/: {', '.join(sorted(clash))} is both a function and a view")
    for name in ("access.sql", "roles.sql"):
        if not (root / name).is_file():
            raise CatalogError(f"sql/{name} is missing")
    return Catalog(_read_migrations(root), tuple(functions), _dependency_order(views),
                   (root / "access.sql").read_text(), (root / "roles.sql").read_text())
