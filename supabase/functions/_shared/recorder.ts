// What a function received, kept in memory so e2e tests can assert exactly what the consumer
// delivered to it: GET lists the calls ({"calls": [...]}, each with the wf headers it came with),
// DELETE forgets them ({"cleared": n}). The demo functions (_shared/outbox.ts) log every call here;
// `recorder()` is the bare stand-in: it logs and answers with data of its own.
import { type Call, contract, type Handler, json, ok } from "./contract.ts";

export type Received = {
  action: string;
  payload: unknown;
  headers: Record<string, string | null>;
  /** the demo functions' verdict: "ok", "duplicate" (an answer replayed by webhook-id), or the error */
  outcome?: string;
};

const RECORDED_HEADERS = [
  "x-wf-run",
  "x-wf-step",
  "x-wf-attempt",
  "x-correlation-id",
  "webhook-id",
];

// a gateway that runs for days (the demo) must not grow without bound
const MAX_CALLS = 10_000;

export class CallLog {
  readonly calls: Received[] = [];
  private onClear: Array<() => void> = [];

  record(call: Call, outcome?: string): void {
    const headers = Object.fromEntries(RECORDED_HEADERS.map((h) => [h, call.req.headers.get(h)]));
    const entry: Received = { action: call.action, payload: call.payload, headers };
    if (outcome !== undefined) entry.outcome = outcome;
    this.calls.push(entry);
    if (this.calls.length > MAX_CALLS) this.calls.splice(0, this.calls.length - MAX_CALLS);
  }

  /** Also forget this when the log is cleared (e.g. the in-memory dedupe of webhook ids). */
  alsoClear(fn: () => void): void {
    this.onClear.push(fn);
  }

  /** The GET and DELETE routes for `contract(onCall, routes)`. */
  routes(): Record<string, (req: Request) => Response> {
    return {
      GET: () => json({ calls: this.calls }),
      DELETE: () => {
        const cleared = this.calls.splice(0).length;
        for (const fn of this.onClear) fn();
        return json({ cleared });
      },
    };
  }
}

export function recorder(answer: (call: Call) => unknown): Handler {
  const log = new CallLog();
  return contract((call) => {
    log.record(call);
    return ok(answer(call));
  }, log.routes());
}
