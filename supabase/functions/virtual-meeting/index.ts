// Demo `virtual-meeting`: accepting a meeting and saving its link
// (templates/virtual-meeting-accepted.json). Records each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field } from "../_shared/outbox.ts";

export default demoFunction("virtual-meeting", {
  // → meeting_id, status
  accept: action(z.strictObject({ meetingId: field.id() }), ({ meetingId }) => ({
    meeting_id: meetingId,
    status: "accepted",
  })),
  // → meeting_id, link
  update_link: action(
    z.strictObject({ meetingId: field.id(), link: field.url() }),
    ({ meetingId, link }) => ({ meeting_id: meetingId, link }),
  ),
});
