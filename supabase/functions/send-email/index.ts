// Local stand-in for the seed's `send-email` function (templates/proposal-created.json): records
// each call and answers as a mail service would once the message is queued. It sends nothing.
import { recorder } from "../_shared/recorder.ts";

export default recorder(({ action, payload }) => ({
  action,
  queued: true,
  recipient: payload.recipient_email ?? null,
}));
