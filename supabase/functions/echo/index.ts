// Answers with what it was sent and remembers every call, so e2e tests can assert exactly what
// the consumer delivered (GET lists the calls, DELETE forgets them).
import { contract, json, ok } from "../_shared/contract.ts";

type Received = {
  action: string;
  payload: unknown;
  headers: Record<string, string | null>;
};

const RECORDED_HEADERS = ["x-wf-run", "x-wf-step", "x-wf-attempt", "webhook-id", "traceparent"];
const calls: Received[] = [];

export default contract(({ action, payload, req }) => {
  const headers = Object.fromEntries(RECORDED_HEADERS.map((h) => [h, req.headers.get(h)]));
  calls.push({ action, payload, headers });
  const attempt = headers["x-wf-attempt"];
  return ok({
    action,
    payload,
    attempt: attempt === null ? null : Number(attempt),
    webhook_id: headers["webhook-id"],
  });
}, {
  GET: () => json({ calls }),
  DELETE: () => {
    const cleared = calls.splice(0).length;
    return json({ cleared });
  },
});
