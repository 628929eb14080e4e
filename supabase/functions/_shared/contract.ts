// The wf edge-function contract (README, Edge function contract), shared by every function in this folder.
//
// Request:  POST {"action": "...", "payload": {...}}
// Answer:   {"success": true, "data": {...}} | {"success": false, "error": "...", "retryable"?: true}
// Auth:     "Authorization: Bearer $WF_FUNCTIONS_TOKEN" when that variable is set, and a Standard
//           Webhooks signature over the raw body when WF_SIGNING_SECRET is set.
//
// Both variables are read on every request rather than at import time, so one gateway process
// can be reconfigured by tests and a function never caches a stale secret.
import { Webhook, WebhookVerificationError } from "standardwebhooks";

export type Payload = Record<string, unknown>;
export type Call = { action: string; payload: Payload; req: Request };
export type Handler = { fetch(req: Request): Promise<Response> };

export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export const ok = (data: unknown = {}, status = 200) => json({ success: true, data }, status);

export const fail = (error: string, status = 200, extra: Payload = {}, headers: HeadersInit = {}) =>
  json({ success: false, error, ...extra }, status, headers);

const encoder = new TextEncoder();

// Constant-time over the bytes, so the token cannot be guessed one byte at a time from response
// times (its length may leak; that is harmless).
function sameSecret(a: string, b: string): boolean {
  const x = encoder.encode(a), y = encoder.encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** A 401 answer when the bearer token is wrong, else null. */
export function authorize(req: Request): Response | null {
  const token = Deno.env.get("WF_FUNCTIONS_TOKEN");
  if (!token) return null;
  const given = req.headers.get("authorization") ?? "";
  return sameSecret(given, `Bearer ${token}`) ? null : fail("unauthorized", 401);
}

// Building a Webhook decodes the secret; keep the last one since the secret rarely changes.
let cached: { secret: string; webhook: Webhook } | null = null;

/**
 * A 401 answer when WF_SIGNING_SECRET is set and the signature does not match, else null.
 * The secret is base64, optionally prefixed "whsec_" — the form both the npm and the PyPI
 * standardwebhooks packages accept, so the consumer and the functions agree on the key bytes.
 */
export function verifySignature(req: Request, rawBody: string): Response | null {
  const secret = Deno.env.get("WF_SIGNING_SECRET");
  if (!secret) return null;
  if (cached?.secret !== secret) {
    try {
      cached = { secret, webhook: new Webhook(secret) };
    } catch {
      return fail("WF_SIGNING_SECRET is not base64 (optionally prefixed whsec_)", 500);
    }
  }
  try {
    cached.webhook.verify(rawBody, {
      "webhook-id": req.headers.get("webhook-id") ?? "",
      "webhook-timestamp": req.headers.get("webhook-timestamp") ?? "",
      "webhook-signature": req.headers.get("webhook-signature") ?? "",
    }, { jsonParse: false });
    return null;
  } catch (e) {
    if (e instanceof WebhookVerificationError) return fail("invalid signature", 401);
    throw e;
  }
}

/** Verifies the signature over the raw body, then parses the contract's envelope. */
export async function readCall(req: Request): Promise<Call | Response> {
  const raw = await req.text();
  const bad = verifySignature(req, raw);
  if (bad) return bad;
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return fail("request body is not JSON", 400);
  }
  const { action, payload = {} } = (body ?? {}) as { action?: unknown; payload?: unknown };
  if (typeof action !== "string" || !action) {
    return fail('request body needs an "action" string', 400);
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return fail('"payload" must be an object', 400);
  }
  return { action, payload: payload as Payload, req };
}

/**
 * Wraps an action handler into the module shape the gateway expects (`export default { fetch }`).
 * POST carries calls; other methods go to `routes` (e.g. echo's GET/DELETE), still behind the token.
 */
export function contract(
  onCall: (call: Call) => Response | Promise<Response>,
  routes: Record<string, (req: Request) => Response | Promise<Response>> = {},
): Handler {
  return {
    async fetch(req) {
      const denied = authorize(req);
      if (denied) return denied;
      if (req.method !== "POST") {
        const route = routes[req.method];
        return route ? await route(req) : fail(`method ${req.method} not allowed`, 405);
      }
      const call = await readCall(req);
      return call instanceof Response ? call : await onCall(call);
    },
  };
}
