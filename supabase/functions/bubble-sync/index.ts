// Demo `bubble-sync`: pushes records to the external Bubble app (proposal-status-change,
// signup-sync — user-signup's child workflow —, listing-published, the fan-out and retry-delays
// patterns), one record per call. Records each call in demo.outbox (_shared/outbox.ts).
//
// The demo's failure: while demo.flags `bubble_api_key_valid` is false (read on every call when
// WF_DEMO_DATABASE_URL is set), Bubble "rejects the key" — a failure that no retry can fix, so
// it is answered without `retryable`: the step goes dead at once and the run to the DLQ. Set the
// flag back to true and `wf retry` the run.
import { z } from "zod";
import { action, demoFunction, demoQuery, field, stableId } from "../_shared/outbox.ts";

export const KEY_REJECTED = "Bubble rejected the API key (401): rotate BUBBLE_API_KEY";

export default demoFunction("bubble-sync", {
  // → table, record_id, operation, bubble_id
  sync_single: action(
    z.strictObject({
      table: field.name(),
      recordId: field.id(),
      operation: z.enum(["INSERT", "UPDATE", "DELETE"], {
        errorMap: () => ({ message: "must be INSERT, UPDATE or DELETE" }),
      }),
      fields: field.object().optional(),
    }),
    ({ table, recordId, operation }) => ({
      table,
      record_id: recordId,
      operation,
      bubble_id: stableId("bubble", table, recordId),
    }),
  ),
}, {
  async guard(_ctx, db) {
    if (!db) return null;
    const [flag] = await demoQuery(
      "reading demo.flags",
      () => db`select value from demo.flags where key = 'bubble_api_key_valid'`,
    );
    return flag?.value === false ? { error: KEY_REJECTED } : null;
  },
});
