// A function that remembers every call it gets and answers with data of its own: the local
// stand-ins for functions a workflow names (the seed's `messages` and `send-email`), so e2e tests
// can assert exactly what the consumer delivered to each. GET lists the calls, DELETE forgets them.
import { type Call, contract, type Handler, json, ok } from "./contract.ts";

export type Received = {
  action: string;
  payload: unknown;
  headers: Record<string, string | null>;
};

const RECORDED_HEADERS = [
  "x-wf-run",
  "x-wf-step",
  "x-wf-attempt",
  "x-correlation-id",
  "webhook-id",
];

export function recorder(answer: (call: Call) => unknown): Handler {
  const calls: Received[] = [];
  return contract((call) => {
    const headers = Object.fromEntries(RECORDED_HEADERS.map((h) => [h, call.req.headers.get(h)]));
    calls.push({ action: call.action, payload: call.payload, headers });
    return ok(answer(call));
  }, {
    GET: () => json({ calls }),
    DELETE: () => json({ cleared: calls.splice(0).length }),
  });
}
