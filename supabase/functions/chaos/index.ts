// The chaos test's function (tests/faults/test_chaos.py): one call in eight fails, decided by the
// call itself, not by chance, so the test computes which ones: a call fails when the FNV-1a hash
// of "<webhook-id>#<attempt>" is 0 modulo 8 (webhook-id is "<run_id>:<step>"; without signing,
// the x-wf-run and x-wf-step headers give the same). A failure is a 503, which wf retries.
//
// POST action "call", payload {"ms": n}: waits n ms (so calls are in flight when the test kills a
// worker), then answers. Every call is recorded, with a sequence number taken when it arrives
// and one taken when it answers (one counter for both), so a test can tell that one call began
// after another one ended without comparing clocks. GET lists the calls ({"calls": [...]}, an
// answer not yet given has "answered": null), DELETE forgets them.
import { contract, fail, json, ok } from "../_shared/contract.ts";

type Received = {
  run: string;
  step: string;
  attempt: number;
  fails: boolean;
  payload: unknown;
  arrived: number;
  answered: number | null;
};

const MAX_CALLS = 100_000;
const calls: Received[] = [];
let clock = 0;
const encoder = new TextEncoder();

/** 32-bit FNV-1a over the UTF-8 bytes (Python: h ^= b; h = h * 0x01000193 & 0xffffffff). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const b of encoder.encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export default contract(async ({ action, payload, req }) => {
  if (action !== "call") return fail(`unknown action: ${action}`, 400);
  const run = req.headers.get("x-wf-run") ?? "";
  const step = req.headers.get("x-wf-step") ?? "";
  const attempt = Number(req.headers.get("x-wf-attempt") ?? "0");
  const id = req.headers.get("webhook-id") ?? `${run}:${step}`;
  const fails = fnv1a(`${id}#${attempt}`) % 8 === 0;
  const entry: Received = { run, step, attempt, fails, payload, arrived: ++clock, answered: null };
  calls.push(entry);
  if (calls.length > MAX_CALLS) calls.splice(0, calls.length - MAX_CALLS);
  const ms = Number(payload.ms ?? 0);
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  entry.answered = ++clock;
  if (fails) {
    return fail(`chaos: call ${attempt} of ${id} fails (one call in eight)`, 503, {
      retryable: true,
    });
  }
  return ok({ run, step, attempt });
}, {
  GET: () => json({ calls }),
  DELETE: () => json({ cleared: calls.splice(0).length }),
});
