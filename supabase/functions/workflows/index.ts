// The HTTP API for apps (README, "HTTP API for apps"): start a workflow and read your own runs.
//
//   POST /workflows/start     {"workflow", "input"?: {...}, "idempotency_key"?, "correlation_id"?}
//                             → 201 {"run_id", "workflow", "status", "created_at"} (200 when the
//                               idempotency key returned a run the caller started before)
//   GET  /workflows/jobs      → 200 {"jobs": [...]}: the caller's runs, newest first (?limit=1..100)
//   GET  /workflows/jobs/{id} → 200 the run with its steps and its output as final_result; 404
//                               when it does not exist or is someone else's (the two are
//                               indistinguishable on purpose)
//   POST /workflows/jobs/{id}/signals/{name}   body: the payload (any JSON; empty body → {})
//                             → 202 {"run_id", "signal", "accepted": true}: the step waiting for it
//                               goes on, or it is kept until one waits; 409 when the run is
//                               final; 404 as for GET /jobs/{id}
//
// Paths are relative to the functions URL: /functions/v1/workflows/... (the local gateway
// and Supabase's); "/workflows/start" with the function name in front also works.
//
// Auth: "Authorization: Bearer <Supabase user JWT>", verified here (HS256, the project's JWT
// secret) — deploy with verify_jwt = false so that CORS preflights reach the function. The
// token's `sub` is the user. Each request is one transaction that puts the verified claims in
// request.jwt.claims, as PostgREST does, so wf records auth.uid() as the run's owner
// (sql/access.sql, sql/functions/grant_app_access.sql); reads then `set local role
// authenticated` (when that role exists) and go through wf.my_runs, so row level security
// filters them, and filter by owner as well.
// wf.enqueue runs as the function's own database role, which needs wf_admin (or to own wf) and,
// on Supabase, membership in `authenticated` (the `postgres` role of SUPABASE_DB_URL has both).
//
// Environment (read on each request, never at import):
//   WF_DATABASE_URL, else SUPABASE_DB_URL   the database
//   SUPABASE_JWT_SECRET, else WF_JWT_SECRET the project's JWT secret (the hosted platform
//                                           refuses secrets named SUPABASE_*: use WF_JWT_SECRET)
//   WF_CORS_ORIGINS                         comma-separated allowed origins; no wildcard
//   WF_API_WORKFLOWS                        optional comma-separated workflows apps may start
//                                           (others answer 404 as if unknown); unset: any
//
// Errors: {"error": "...", "field"?: "..."} — 400 bad input (naming the field), 401 bad token,
// 404 unknown run or workflow, 405, 413; 500 only for faults of the server or its set-up. Which
// SQLSTATE is which: ./sqlstates.ts (the table of consumer/wf/errors.py, README SQL API).
import { errors as joseErrors, type JWTPayload, jwtVerify } from "jose";
import postgres from "postgres";
import { callerErrorStatus } from "./sqlstates.ts";

type Sql = postgres.Sql;
type Tx = postgres.TransactionSql;
type User = { id: string; claims: JWTPayload };
type Json = Record<string, unknown>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_BODY_BYTES = 2 * 1024 * 1024; // wf itself caps the input (setting max_input_bytes)
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 100;
const START_FIELDS = new Set(["workflow", "input", "idempotency_key", "correlation_id"]);
const RUN_COLUMNS = [
  "run_id",
  "workflow",
  "version",
  "status",
  "progress",
  "correlation_id",
  "error",
  "failed_step",
  "run_at",
  "created_at",
  "started_at",
  "finished_at",
];

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message);
  }
}

// ---- configuration: read lazily, so a missing variable fails the request, not the import ----

function env(name: string): string | undefined {
  const value = Deno.env.get(name)?.trim();
  return value ? value : undefined;
}

function list(name: string): Set<string> {
  return new Set((env(name) ?? "").split(",").map((s) => s.trim()).filter((s) => s && s !== "*"));
}

let db: { url: string; sql: Sql; authenticatedRole?: boolean } | null = null;

function database(): NonNullable<typeof db> {
  const url = env("WF_DATABASE_URL") ?? env("SUPABASE_DB_URL");
  if (!url) throw new Error("workflows: set WF_DATABASE_URL (or SUPABASE_DB_URL)");
  if (db?.url !== url) {
    db?.sql.end({ timeout: 5 }).catch(() => {});
    db = {
      url,
      sql: postgres(url, {
        max: 4,
        idle_timeout: 30,
        connect_timeout: 10,
        // works through Supabase's transaction pooler too, which cannot keep prepared statements
        prepare: false,
        onnotice: () => {},
        connection: { application_name: "wf-workflows" },
      }),
    };
  }
  return db;
}

let jwtKey: { secret: string; key: Uint8Array } | null = null;

function jwtSecret(): Uint8Array {
  const secret = env("SUPABASE_JWT_SECRET") ?? env("WF_JWT_SECRET");
  if (!secret) throw new Error("workflows: set SUPABASE_JWT_SECRET (or WF_JWT_SECRET)");
  if (jwtKey?.secret !== secret) jwtKey = { secret, key: new TextEncoder().encode(secret) };
  return jwtKey.key;
}

// ---- HTTP helpers ---------------------------------------------------------------------------

function corsHeaders(req: Request): Record<string, string> {
  const origin = req.headers.get("origin");
  const headers: Record<string, string> = { vary: "Origin" };
  if (origin && list("WF_CORS_ORIGINS").has(origin)) {
    headers["access-control-allow-origin"] = origin;
  }
  return headers;
}

function json(
  req: Request,
  body: unknown,
  status = 200,
  extra: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...corsHeaders(req), ...extra },
  });
}

function preflight(req: Request): Response {
  const cors = corsHeaders(req);
  if (!cors["access-control-allow-origin"]) {
    return new Response(null, { status: 403, headers: cors });
  }
  return new Response(null, {
    status: 204,
    headers: {
      ...cors,
      "access-control-allow-methods": "GET, POST, OPTIONS",
      "access-control-allow-headers": "authorization, content-type, apikey, x-client-info",
      "access-control-max-age": "600",
    },
  });
}

// ---- auth -----------------------------------------------------------------------------------

async function authenticate(req: Request): Promise<User> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  if (!match) throw new HttpError(401, "missing bearer token (Authorization: Bearer <JWT>)");
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(match[1], jwtSecret(), {
      algorithms: ["HS256"],
      requiredClaims: ["sub", "exp"],
    }));
  } catch (e) {
    if (e instanceof joseErrors.JWTExpired) throw new HttpError(401, "token expired");
    if (e instanceof joseErrors.JOSEError) throw new HttpError(401, "invalid token");
    throw e;
  }
  if (typeof claims.sub !== "string" || !UUID.test(claims.sub)) {
    throw new HttpError(401, "token subject is not a user id");
  }
  return { id: claims.sub.toLowerCase(), claims };
}

/** One transaction as the user: their claims in request.jwt.claims (so auth.uid() is theirs). */
function asUser<T>(user: User, work: (tx: Tx) => Promise<T>, mode = "read write"): Promise<T> {
  return database().sql.begin(mode, async (tx) => {
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(user.claims)}, true)`;
    return await work(tx);
  }) as Promise<T>;
}

/** From here on the transaction runs as `authenticated`, so row level security applies. */
async function becomeAuthenticated(tx: Tx): Promise<void> {
  const state = database();
  if (state.authenticatedRole === undefined) {
    const [row] = await tx`select exists (select 1 from pg_catalog.pg_roles
                                         where rolname = 'authenticated') as present`;
    state.authenticatedRole = row.present as boolean;
  }
  if (state.authenticatedRole) await tx`select set_config('role', 'authenticated', true)`;
}

// ---- the endpoints ----------------------------------------------------------------------------

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalText(body: Json, field: string, max: number): string | null {
  const value = body[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || value.length < 1 || value.length > max) {
    throw new HttpError(400, `${field} must be a string of 1 to ${max} characters`, field);
  }
  return value;
}

async function readText(req: Request): Promise<string> {
  if (Number(req.headers.get("content-length") ?? 0) > MAX_BODY_BYTES) {
    throw new HttpError(413, `body is larger than ${MAX_BODY_BYTES} bytes`, "body");
  }
  const raw = await req.text();
  if (raw.length > MAX_BODY_BYTES) {
    throw new HttpError(413, `body is larger than ${MAX_BODY_BYTES} bytes`, "body");
  }
  return raw;
}

async function readBody(req: Request): Promise<Json> {
  const raw = await readText(req);
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new HttpError(400, "body is not JSON", "body");
  }
  if (!isObject(body)) throw new HttpError(400, "body must be a JSON object", "body");
  return body;
}

async function start(req: Request, user: User): Promise<Response> {
  const body = await readBody(req);
  const unknown = Object.keys(body).find((k) => !START_FIELDS.has(k));
  if (unknown) {
    throw new HttpError(
      400,
      `unknown field ${unknown} (expected ${[...START_FIELDS].join(", ")})`,
      unknown,
    );
  }
  const workflow = body.workflow;
  if (typeof workflow !== "string" || !workflow.trim() || workflow.length > 200) {
    throw new HttpError(400, "workflow must be the name of a workflow", "workflow");
  }
  const input = body.input ?? {};
  if (!isObject(input)) throw new HttpError(400, "input must be a JSON object", "input");
  const key = optionalText(body, "idempotency_key", 256);
  const correlationId = optionalText(body, "correlation_id", 512);
  const allowed = list("WF_API_WORKFLOWS");
  if (allowed.size && !allowed.has(workflow)) {
    throw new HttpError(404, `unknown workflow ${workflow}`, "workflow");
  }

  // idempotency keys are per user, so one user's key never finds another user's run
  const scopedKey = key === null ? null : `${user.id}:${key}`;
  const run = await asUser(user, async (tx) => {
    const [started] = await tx`
      select wf.enqueue(${workflow}, ${tx.json(input as postgres.JSONValue)}, ${scopedKey}, null,
                        ${correlationId}) as run_id`;
    await becomeAuthenticated(tx);
    const [row] = await tx`
      select run_id, workflow, status, created_at, created_at = now() as created
      from wf.my_runs where run_id = ${started.run_id} and owner = ${user.id}`;
    if (!row) {
      // wf could not tell who is signed in (no auth.uid()): roll back rather than leave a run
      // that nobody can read
      throw new Error(
        "workflows: the new run has no owner; is Supabase Auth (auth.uid()) installed?",
      );
    }
    return row;
  });
  const { created, ...rest } = run;
  return json(req, rest, created ? 201 : 200);
}

async function listRuns(req: Request, user: User): Promise<Response> {
  const raw = new URL(req.url).searchParams.get("limit");
  const limit = raw === null ? DEFAULT_LIMIT : /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT)) {
    throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_LIMIT}`, "limit");
  }
  const jobs = await asUser(user, async (tx) => {
    await becomeAuthenticated(tx);
    return await tx`
      select ${tx(RUN_COLUMNS)} from wf.my_runs
      where owner = ${user.id}
      order by created_at desc, run_id desc
      limit ${limit}`;
  }, "read only");
  return json(req, { jobs: [...jobs] });
}

async function getRun(req: Request, user: User, id: string): Promise<Response> {
  if (!UUID.test(id)) throw new HttpError(404, `unknown run ${id}`, "id");
  const [run] = await asUser(user, async (tx) => {
    await becomeAuthenticated(tx);
    return await tx`
      select ${tx(RUN_COLUMNS)}, input, steps, output as final_result, parent_run_id from wf.my_runs
      where run_id = ${id} and owner = ${user.id}`;
  }, "read only");
  if (!run) throw new HttpError(404, `unknown run ${id}`, "id");
  return json(req, run);
}

const MAX_SIGNAL_NAME = 100;

async function sendSignal(req: Request, user: User, arg: string): Promise<Response> {
  const [id, name] = arg.split("\u0000");
  if (!UUID.test(id)) throw new HttpError(404, `unknown run ${id}`, "id");
  if (name.length < 1 || name.length > MAX_SIGNAL_NAME) {
    throw new HttpError(400, `signal name must be 1 to ${MAX_SIGNAL_NAME} characters`, "name");
  }
  const raw = await readText(req);
  let payload: unknown = {};
  if (raw.trim()) {
    try {
      payload = JSON.parse(raw);
    } catch {
      throw new HttpError(400, "body is not JSON", "body");
    }
  }
  const accepted = await asUser(user, async (tx) => {
    // only the run's owner may signal it: wf.my_runs shows the caller's runs only (owner =
    // auth.uid() from the verified claims); anyone else's run is as unknown as a missing one
    const [mine] = await tx`select run_id from wf.my_runs where run_id = ${id} and owner = ${user.id}`;
    if (!mine) throw new HttpError(404, `unknown run ${id}`, "id");
    const [row] = await tx`
      select wf.signal(${id}, ${name}, ${tx.json(payload as postgres.JSONValue)}) as accepted`;
    return row.accepted as boolean;
  });
  if (!accepted) throw new HttpError(409, `run ${id} is already final: the signal was not kept`, "id");
  return json(req, { run_id: id, signal: name, accepted }, 202);
}

// ---- routing ----------------------------------------------------------------------------------

type Route = {
  method: string;
  handle: (req: Request, user: User, arg: string) => Promise<Response>;
};

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // a malformed escape: not a run id, so the lookup answers 404
  }
}

function route(pathname: string): { routes: Route[]; arg: string } | null {
  // "/functions/v1/workflows/..." locally, "/workflows/..." on Supabase: drop the prefix and the
  // function's name; "/workflows/start" (the seed's spelling) is also accepted after it
  const path = pathname.replace(/^\/functions\/v1/, "").replace(/^\/workflows(?=\/|$)/, "")
    .replace(/\/+$/, "");
  if (path === "/start" || path === "/workflows/start") {
    return { routes: [{ method: "POST", handle: start }], arg: "" };
  }
  if (path === "/jobs") return { routes: [{ method: "GET", handle: listRuns }], arg: "" };
  const one = /^\/jobs\/([^/]+)$/.exec(path);
  if (one) return { routes: [{ method: "GET", handle: getRun }], arg: decodeSegment(one[1]) };
  const signal = /^\/jobs\/([^/]+)\/signals\/([^/]+)$/.exec(path);
  if (signal) {
    return {
      routes: [{ method: "POST", handle: sendSignal }],
      arg: `${decodeSegment(signal[1])}\u0000${decodeSegment(signal[2])}`,
    };
  }
  return null;
}

/** The request field a wf error is about: its message names it (README, SQL API). */
function wfErrorField(code: string, message: string): string {
  if (/^run \S+: signal /.test(message)) return "body"; // wf.signal: the payload
  if (code === "P0002" || code === "55000") return "workflow";
  return ["idempotency_key", "correlation_id"].find((f) => message.includes(f)) ?? "input";
}

function sqlState(e: unknown): string | undefined {
  return e instanceof postgres.PostgresError ? e.code : undefined;
}

export default {
  async fetch(req: Request): Promise<Response> {
    if (req.method === "OPTIONS") return preflight(req);
    let user: User | null = null;
    try {
      const found = route(new URL(req.url).pathname);
      if (!found) {
        throw new HttpError(
          404,
          "no such endpoint: POST /start, GET /jobs, GET /jobs/{id}, POST /jobs/{id}/signals/{name}",
        );
      }
      const match = found.routes.find((r) => r.method === req.method);
      if (!match) {
        return json(req, { error: `method ${req.method} not allowed` }, 405, {
          allow: [...found.routes.map((r) => r.method), "OPTIONS"].join(", "),
        });
      }
      user = await authenticate(req);
      return await match.handle(req, user, found.arg);
    } catch (e) {
      if (e instanceof HttpError) {
        const extra: Record<string, string> = e.status === 401
          ? { "www-authenticate": 'Bearer error="invalid_token"' }
          : {};
        return json(
          req,
          { error: e.message, ...(e.field ? { field: e.field } : {}) },
          e.status,
          extra,
        );
      }
      const code = sqlState(e);
      const status = code ? callerErrorStatus(code) : undefined;
      if (code && status !== undefined) {
        // wf's message names the idempotency key as stored: without the caller's prefix
        const message = user
          ? (e as Error).message.replaceAll(`${user.id}:`, "")
          : (e as Error).message;
        return json(req, { error: message, field: wfErrorField(code, message) }, status);
      }
      console.error("workflows:", e);
      return json(req, { error: "internal error" }, 500);
    }
  },
};
