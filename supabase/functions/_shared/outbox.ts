// The shared body of the demo edge functions (auth-user, users, proposal, listing, messages,
// send-email, sms, calendar, bubble-sync, analytics, …), so each function file is just its action
// table: per action a Zod schema for the payload and a pure function computing the answer.
//
//   export default demoFunction("sms", {
//     send: action(z.strictObject({ to: phone(), text: field.text(1600) }), ({ to }) => ({ to })),
//   });
//
// Per call, in this order (ADR-015: validate at the boundary, fail fast, no retries inside):
//   1. bearer token and Standard Webhooks signature, then the {action, payload} envelope
//      (contract.ts) — 401 / 400;
//   2. an unknown action → 400 naming it; a payload its schema refuses → 400
//      {"success": false, "error": "<field>: <problem>"} (the worker does not retry a 400);
//   3. a delivery seen before (same webhook-id, i.e. the same run and step) → the stored answer,
//      so a retry after a lost answer does not repeat the side effect;
//   4. the function's guard, if any (bubble-sync: is the API key valid?);
//   5. the answer, computed by the action's pure function, recorded instead of calling a third
//      party: a row in demo.outbox when WF_DEMO_DATABASE_URL is set, `insert … on conflict
//      (webhook_id) do nothing`, so two concurrent deliveries record one row and both answer
//      with it; without a database, in memory (deduplicated the same way).
// Every call is also logged in memory for e2e tests: GET lists, DELETE clears (recorder.ts).
//
// Environment, read on every request (never at import): WF_DEMO_DATABASE_URL, plus the
// WF_FUNCTIONS_TOKEN and WF_SIGNING_SECRET that contract.ts checks. No CORS headers: the wf
// worker calls these, never a browser.
import postgres from "postgres";
import { z } from "zod";
import { type Call, contract, fail, type Handler, json, ok, type Payload } from "./contract.ts";
import { CallLog } from "./recorder.ts";

export type Data = Record<string, unknown>;
export type Sql = postgres.Sql;

/** Who is calling: the wf headers of the delivery (README, Edge function contract). */
export type Context = {
  function: string;
  action: string;
  /** `webhook-id` (`<run_id>:<step>`, the same on every attempt); unsigned: `x-wf-run:x-wf-step` */
  webhookId: string | null;
  runId: string | null;
  step: string | null;
};

/** One entry of a function's action table; build it with `action(schema, answer)`. */
export type Action = {
  validate(payload: Payload): { input: unknown; error?: undefined } | { error: string };
  answer(input: unknown, ctx: Context): Data;
};

/** Refuses a call before its side effect: the error, its HTTP status (default 200), retryable? */
export type Refusal = { error: string; status?: number; retryable?: boolean };

export type Options = {
  guard?: (ctx: Context, db: Sql | null) => Promise<Refusal | null>;
};

// ---- validation at the boundary ---------------------------------------------------------------

/** "<field>: <problem>" for the first issue Zod found ("payload" when it is the whole object). */
export function problem(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue.code === "unrecognized_keys") {
    return `${[...issue.path, issue.keys[0]].join(".")}: unknown field`;
  }
  const field = issue.path.length ? issue.path.join(".") : "payload";
  if (issue.code === "invalid_type" && issue.received === "undefined") return `${field}: required`;
  return `${field}: ${issue.message}`;
}

export function action<S extends z.ZodTypeAny>(
  schema: S,
  answer: (input: z.output<S>, ctx: Context) => Data,
): Action {
  return {
    validate(payload) {
      const parsed = schema.safeParse(payload);
      return parsed.success ? { input: parsed.data } : { error: problem(parsed.error) };
    },
    answer: (input, ctx) => answer(input as z.output<S>, ctx),
  };
}

const PROPOSAL_STATUSES = [
  "pending",
  "accepted",
  "declined",
  "rejected",
  "cancelled",
  "withdrawn",
  "expired",
] as const;

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$/i;

/** The instant in UTC (ISO 8601), or null for a day or time that does not exist (Feb 30, 24:10). */
function parseDateTime(s: string): string | null {
  const [, y, m, d, hh, mm] = DATE_TIME.exec(s)!.map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  if (day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d || hh > 23 || mm > 59) return null;
  const at = new Date(
    s.replace(" ", "T").replace(/([+-]\d{2})(\d{2})$/, "$1:$2").replace(/([+-]\d{2})$/, "$1:00"),
  );
  return Number.isNaN(at.getTime()) ? null : at.toISOString();
}

const integerToString = (v: unknown) =>
  typeof v === "number" && Number.isInteger(v) ? String(v) : v;

/** Field schemas the action tables share. */
export const field = {
  /** an id: a non-empty string, or an integer (a template keeps a lone `{{ x }}`'s JSON type) */
  id: () =>
    z.preprocess(
      integerToString,
      z.string({ invalid_type_error: "must be a string or an integer id" }).trim()
        .min(1, "must not be empty").max(128, "must be at most 128 characters"),
    ),
  text: (max: number) =>
    z.string({ invalid_type_error: "must be a string" }).trim()
      .min(1, "must not be empty").max(max, `must be at most ${max} characters`),
  email: () =>
    z.string({ invalid_type_error: "must be a string" }).trim()
      .max(254, "must be at most 254 characters").email("must be an email address"),
  url: () =>
    z.string({ invalid_type_error: "must be a string" }).max(
      2048,
      "must be at most 2048 characters",
    )
      .url("must be a URL").refine((u) => /^https?:\/\//i.test(u), "must be an http(s) URL"),
  /** a lowercase name: an event, a template, a channel, a table */
  name: () =>
    z.string({ invalid_type_error: "must be a string" })
      .regex(/^[a-z][a-z0-9_.:-]{0,63}$/, "must be a lowercase name (a-z, 0-9, _ . : -)"),
  object: () => z.record(z.string(), z.unknown(), { invalid_type_error: "must be an object" }),
  proposalStatus: () =>
    z.enum(PROPOSAL_STATUSES, {
      errorMap: () => ({ message: `must be one of ${PROPOSAL_STATUSES.join(", ")}` }),
    }),
  /** an ISO 8601 date-time with a time zone, e.g. 2026-12-01T15:00:00Z; answered in UTC */
  dateTime: () =>
    z.string({ invalid_type_error: "must be a string" })
      .regex(DATE_TIME, "must be an ISO 8601 date-time with a time zone, e.g. 2026-12-01T15:00:00Z")
      .transform((s, ctx) => {
        const at = parseDateTime(s);
        if (at) return at;
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: "is not a valid date-time" });
        return z.NEVER;
      }),
};

// ---- deterministic ids ----------------------------------------------------------------------

const encoder = new TextEncoder();
const MASK64 = (1n << 64n) - 1n;

/**
 * A short id that the same parts always give (FNV-1a, 64 bits): a retried call, or the same
 * input in another run, computes the same id — the answers stay pure functions of their input.
 */
export function stableId(prefix: string, ...parts: unknown[]): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of encoder.encode(JSON.stringify(parts))) {
    h = ((h ^ BigInt(byte)) * 0x100000001b3n) & MASK64;
  }
  return `${prefix}_${h.toString(16).padStart(16, "0")}`;
}

// ---- where a call is recorded ---------------------------------------------------------------

type Saved = { result: Data; duplicate: boolean };

interface Store {
  /** The answer recorded for this delivery before, if any. */
  replay(webhookId: string): Promise<Data | null>;
  /** Records the call; when the same delivery won a race meanwhile, its answer instead. */
  save(ctx: Context, payload: Payload, result: Data): Promise<Saved>;
}

const MAX_REMEMBERED = 10_000;

function memoryStore(): Store & { clear(): void } {
  const seen = new Map<string, Data>();
  return {
    replay: (webhookId) => Promise.resolve(seen.get(webhookId) ?? null),
    save(ctx, _payload, result) {
      if (ctx.webhookId) {
        const prior = seen.get(ctx.webhookId);
        if (prior) return Promise.resolve({ result: prior, duplicate: true });
        seen.set(ctx.webhookId, result);
        if (seen.size > MAX_REMEMBERED) seen.delete(seen.keys().next().value!);
      }
      return Promise.resolve({ result, duplicate: false });
    },
    clear: () => seen.clear(),
  };
}

/** A database fault, answered 503 so the worker retries later (the function never retries). */
class DemoDatabaseError extends Error {}

/** Runs a query of the demo database; a failure becomes a 503 naming `what` (use it in guards). */
export async function demoQuery<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw new DemoDatabaseError(`demo database: ${what}: ${e instanceof Error ? e.message : e}`);
  }
}

function outboxStore(sql: Sql): Store {
  const replay = (webhookId: string) =>
    demoQuery("reading demo.outbox", async () => {
      const [row] = await sql`select result from demo.outbox where webhook_id = ${webhookId}`;
      return row ? row.result as Data : null;
    });
  return {
    replay,
    async save(ctx, payload, result) {
      const [row] = await demoQuery("writing demo.outbox", () =>
        sql`
          insert into demo.outbox ("function", action, webhook_id, run_id, step, payload, result)
          values (${ctx.function}, ${ctx.action}, ${ctx.webhookId}, ${ctx.runId}::uuid, ${ctx.step},
                  ${sql.json(payload as postgres.JSONValue)}, ${
          sql.json(result as postgres.JSONValue)
        })
          on conflict (webhook_id) do nothing
          returning result`);
      if (row) return { result: row.result as Data, duplicate: false };
      // a concurrent delivery of the same webhook-id inserted first: answer what it recorded
      const prior = ctx.webhookId ? await replay(ctx.webhookId) : null;
      if (!prior) throw new DemoDatabaseError(`demo database: no outbox row for ${ctx.webhookId}`);
      return { result: prior, duplicate: true };
    },
  };
}

// One client per process, created on first use and shared by every demo function the process
// serves (the local gateway serves them all); a small pool; `prepare: false` so it also works
// through Supabase's transaction pooler.
let db: { url: string; sql: Sql } | null = null;

/** The demo database when WF_DEMO_DATABASE_URL is set (read on every call), else null. */
export function demoDatabase(): Sql | null {
  const url = Deno.env.get("WF_DEMO_DATABASE_URL")?.trim();
  if (!url) return null;
  if (db?.url !== url) {
    db?.sql.end({ timeout: 5 }).catch(() => {});
    db = {
      url,
      sql: postgres(url, {
        max: 3,
        idle_timeout: 30,
        connect_timeout: 10,
        prepare: false,
        onnotice: () => {},
        connection: { application_name: "wf-demo-functions" },
      }),
    };
  }
  return db.sql;
}

// ---- the handler ------------------------------------------------------------------------------

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function header(req: Request, name: string, max = 256): string | null {
  const value = req.headers.get(name)?.trim();
  return value && value.length <= max ? value : null;
}

function context(fn: string, call: Call): Context {
  const run = header(call.req, "x-wf-run");
  const runId = run && UUID.test(run) ? run.toLowerCase() : null;
  const step = header(call.req, "x-wf-step");
  const webhookId = header(call.req, "webhook-id") ?? (runId && step ? `${runId}:${step}` : null);
  return { function: fn, action: call.action, webhookId, runId, step };
}

/** A replayed answer: the body of the first one, marked in a header. */
const replayed = (result: Data) =>
  json({ success: true, data: result }, 200, { "x-demo-replayed": "true" });

/** Builds a demo function (`export default demoFunction(name, actions)`) — see the top of the file. */
export function demoFunction(
  name: string,
  actions: Record<string, Action>,
  options: Options = {},
): Handler {
  const log = new CallLog();
  const memory = memoryStore();
  log.alsoClear(memory.clear);
  const known = Object.keys(actions).sort().join(", ");

  async function handle(call: Call): Promise<Response> {
    const def = Object.hasOwn(actions, call.action) ? actions[call.action] : undefined;
    if (!def) {
      const error = `unknown action "${call.action.slice(0, 64)}" for ${name} (known: ${known})`;
      log.record(call, error);
      return fail(error, 400);
    }
    const checked = def.validate(call.payload);
    if (checked.error !== undefined) {
      log.record(call, checked.error);
      return fail(checked.error, 400);
    }
    const ctx = context(name, call);
    const sql = demoDatabase();
    const store = sql ? outboxStore(sql) : memory;
    try {
      const prior = ctx.webhookId ? await store.replay(ctx.webhookId) : null;
      if (prior) {
        log.record(call, "duplicate");
        return replayed(prior);
      }
      const refused = options.guard ? await options.guard(ctx, sql) : null;
      if (refused) {
        log.record(call, refused.error);
        return fail(
          refused.error,
          refused.status ?? 200,
          refused.retryable ? { retryable: true } : {},
        );
      }
      const saved = await store.save(ctx, call.payload, {
        action: call.action,
        ...def.answer(checked.input, ctx),
      });
      log.record(call, saved.duplicate ? "duplicate" : "ok");
      return saved.duplicate ? replayed(saved.result) : ok(saved.result);
    } catch (e) {
      if (!(e instanceof DemoDatabaseError)) throw e;
      console.error(`${name}: ${e.message}`);
      log.record(call, e.message);
      return fail(e.message, 503);
    }
  }

  return contract(handle, log.routes());
}
