// Demo `analytics`: tracks a product event (most templates end with one). Records each call in
// demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export default demoFunction("analytics", {
  // → event_id (one per delivery), event, user_id (null when anonymous)
  track: action(
    z.strictObject({
      event: field.name(),
      userId: field.id().optional(),
      properties: field.object().optional(),
    }),
    ({ event, userId, properties }, ctx) => ({
      event_id: stableId("ev", ctx.webhookId ?? [event, userId ?? null, properties ?? {}]),
      event,
      user_id: userId ?? null,
    }),
  ),
});
