"""(temporary: merged into wf.queries once that module settles) The installer's statements."""

from __future__ import annotations

# ---- installer: wf.install ----------------------------------------------------------------

# the ledger: which migrations ran and which routine files are applied (checksums)
LEDGER = """
create schema if not exists wf;
revoke all on schema wf from public;
create table if not exists wf.migrations (
  version    int primary key,
  name       text not null,
  checksum   text not null,
  applied_at timestamptz not null default now()
);
revoke all on wf.migrations from public;
create table if not exists wf.routines (
  path       text primary key,
  kind       text not null check (kind in ('function', 'view')),
  checksum   text not null,
  applied_at timestamptz not null default now()
);
revoke all on wf.routines from public;
"""
LEDGER_MIGRATIONS = "select version, name, checksum from wf.migrations"
LEDGER_RECORD_MIGRATION = "insert into wf.migrations (version, name, checksum) values ($1, $2, $3)"
LEDGER_ROUTINES = "select path, checksum from wf.routines"
LEDGER_RECORD_ROUTINE = """
insert into wf.routines (path, kind, checksum) values ($1, $2, $3)
on conflict (path) do update set kind = excluded.kind, checksum = excluded.checksum, applied_at = now()
"""
# routine files that no longer exist are forgotten (what they created is reported as stale)
LEDGER_FORGET_ROUTINES = "delete from wf.routines where path <> all ($1::text[])"

INSTALL_HAS_PGMQ = """
select exists (select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
               where n.nspname = 'pgmq' and p.proname = 'send')
"""
INSTALL_PGMQ_AVAILABLE = "select exists (select 1 from pg_catalog.pg_available_extensions where name = 'pgmq')"
INSTALL_CREATE_PGMQ = "create extension if not exists pgmq"
INSTALL_HAS_RUNS = "select pg_catalog.to_regclass('wf.runs') is not null"
INSTALL_FUNCTION_NAMES = """
select coalesce(array_agg(p.proname::text), '{}') from pg_catalog.pg_proc p
where p.pronamespace = 'wf'::regnamespace
"""
INSTALL_VIEW_NAMES = """
select coalesce(array_agg(c.relname::text), '{}') from pg_catalog.pg_class c
where c.relnamespace = 'wf'::regnamespace and c.relkind = 'v'
"""
INSTALL_OVERLOADS = """
select count(*) from pg_catalog.pg_proc p where p.pronamespace = 'wf'::regnamespace and p.proname = $1
"""
INSTALL_IS_SQL_FUNCTION = """
select exists (select 1 from pg_catalog.pg_proc p
               where p.pronamespace = 'wf'::regnamespace and p.proname = $1
                 and p.prolang = (select l.oid from pg_catalog.pg_language l where l.lanname = 'sql'))
"""
# functions and views in schema wf that no file defines (an old overload, a dropped file)
INSTALL_STALE_ROUTINES = """
select coalesce(array_agg(name order by name), '{}') from (
  select p.oid::regprocedure::text as name from pg_catalog.pg_proc p
  where p.pronamespace = 'wf'::regnamespace and p.proname <> all ($1::text[])
    and not exists (select 1 from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')
  union all
  select c.oid::regclass::text from pg_catalog.pg_class c
  where c.relnamespace = 'wf'::regnamespace and c.relkind in ('v', 'm') and c.relname <> all ($2::text[])
) stale
"""
# every view reading the given one, directly or through others, with its distance from it
INSTALL_VIEW_DEPENDENTS = """
with recursive dependents (oid, depth) as (
  select distinct r.ev_class, 1
  from pg_catalog.pg_depend d join pg_catalog.pg_rewrite r on r.oid = d.objid
  where d.classid = 'pg_catalog.pg_rewrite'::regclass and d.refobjid = $1::regclass
    and r.ev_class <> $1::regclass
  union
  select r.ev_class, dependents.depth + 1
  from dependents
  join pg_catalog.pg_depend d on d.refobjid = dependents.oid and d.classid = 'pg_catalog.pg_rewrite'::regclass
  join pg_catalog.pg_rewrite r on r.oid = d.objid
  where r.ev_class <> dependents.oid
)
select pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) as name,
       max(dependents.depth) as depth
from dependents join pg_catalog.pg_class c on c.oid = dependents.oid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
group by c.oid, n.nspname
"""
INSTALL_HAS_PG_CRON = "select exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron')"
INSTALL_CAN_CREATE_PG_CRON = """
select exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron')
       and current_setting('cron.database_name', true) = current_database()
"""
INSTALL_CREATE_PG_CRON = "create extension if not exists pg_cron"
INSTALL_TICK_JOB = "select schedule, command from cron.job where jobname = $1"
INSTALL_SCHEDULE_TICK = "select cron.schedule($1, $2, $3)"
