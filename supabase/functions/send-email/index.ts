// Demo `send-email`: queues a templated email (every template that emails). Sends nothing:
// records each call in demo.outbox (_shared/outbox.ts); GET lists the calls it received, DELETE
// clears them (tests/e2e).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export default demoFunction("send-email", {
  // → queued, recipient, message_id
  send: action(
    z.strictObject({
      template_id: field.name(),
      recipient_email: field.email(),
      variables: field.object().optional(),
    }),
    ({ template_id, recipient_email, variables }, ctx) => ({
      queued: true,
      recipient: recipient_email,
      message_id: stableId(
        "email",
        ctx.webhookId ?? [template_id, recipient_email, variables ?? {}],
      ),
    }),
  ),
});
