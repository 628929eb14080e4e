// Demo `messages`: proposal threads and the messages in them (templates/proposal-created.json,
// proposal-status-change.json, virtual-meeting-accepted.json). Records each call in demo.outbox
// (_shared/outbox.ts); GET lists the calls it received, DELETE clears them (tests/e2e).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

const message = action(
  z.strictObject({ threadId: field.id(), text: field.text(4000) }),
  ({ threadId, text }, ctx) => ({
    thread_id: threadId,
    // one message per delivery: a retry of the same step is the same message
    message_id: stableId("msg", ctx.webhookId ?? [threadId, text]),
  }),
);

export default demoFunction("messages", {
  // → thread_id (one thread per proposal)
  create_proposal_thread: action(
    z.strictObject({
      proposalId: field.id(),
      guestId: field.id(),
      hostId: field.id(),
      listingId: field.id(),
      proposalStatus: field.proposalStatus(),
    }),
    ({ proposalId }) => ({ thread_id: `thread-${proposalId}` }),
  ),
  // → thread_id, message_id
  send_message: message,
  send_splitbot_message: message,
});
