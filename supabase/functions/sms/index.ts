// Demo `sms`: sends a text message (proposal-status-change, virtual-meeting-accepted, the
// fan-out and fallback patterns). Records each call in demo.outbox (_shared/outbox.ts).
// A `to` that is not a phone number is a 400: notify-with-fallback relies on it to fail.
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

/** E.164-ish: "+", a country code, 7 to 15 digits in all; spaces, dots, dashes and () allowed. */
export const phone = () =>
  z.string({ invalid_type_error: "must be a string" })
    .transform((s) => s.replace(/[\s().-]/g, ""))
    .refine(
      (s) => /^\+[1-9]\d{6,14}$/.test(s),
      "must be a phone number in E.164 form, e.g. +14155550100",
    );

// GSM-7 texts: 160 characters in one message, 153 per part of a longer one
const segments = (text: string) => text.length <= 160 ? 1 : Math.ceil(text.length / 153);

export default demoFunction("sms", {
  // → message_id, to (normalized), segments
  send: action(
    z.strictObject({ to: phone(), text: field.text(1600) }),
    ({ to, text }, ctx) => ({
      message_id: stableId("sms", ctx.webhookId ?? [to, text]),
      to,
      segments: segments(text),
    }),
  ),
});
