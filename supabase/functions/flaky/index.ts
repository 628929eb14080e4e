// Fails the first N calls per key with a retryable error, then succeeds: exercises retries and
// backoff. Counts live in memory, so they reset when the gateway restarts.
import { contract, fail, ok } from "../_shared/contract.ts";

const counts = new Map<string, number>();

export default contract(({ action, payload }) => {
  if (action !== "fail_first") return fail(`unknown action: ${action}`, 400);
  const key = String(payload.key ?? "");
  const failures = Number(payload.failures ?? 1);
  const status = Number(payload.status ?? 500);
  const count = (counts.get(key) ?? 0) + 1;
  counts.set(key, count);
  if (count <= failures) {
    return fail(`flaky failure ${count} of ${failures}`, status, { retryable: true });
  }
  return ok({ calls: count });
});
