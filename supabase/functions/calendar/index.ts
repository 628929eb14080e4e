// Demo `calendar`: the meeting's calendar event and its invitations
// (templates/virtual-meeting-accepted.json). Records each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export const MEET_URL = "https://meet.example.com/";

const attendees = () =>
  z.array(field.id(), { invalid_type_error: "must be a list of ids" })
    .min(1, "must name at least one attendee").max(50, "must name at most 50 attendees");

export default demoFunction("calendar", {
  // → event_id (one per meeting and start), link (the video link), starts_at (UTC), attendees
  create_event: action(
    z.strictObject({ meetingId: field.id(), startsAt: field.dateTime(), attendees: attendees() }),
    ({ meetingId, startsAt, attendees }) => {
      const eventId = stableId("evt", meetingId, startsAt);
      return { event_id: eventId, link: MEET_URL + eventId, starts_at: startsAt, attendees };
    },
  ),
  // → event_id, invited
  send_invite: action(
    z.strictObject({ eventId: field.id(), attendees: attendees() }),
    ({ eventId, attendees }) => ({ event_id: eventId, invited: attendees }),
  ),
});
