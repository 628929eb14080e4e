// Demo `payments`: charges a guest and refunds a charge (templates/patterns/booking-payment.json,
// whose `charge` step is undone by `refund` when the booking fails: compensate). Moves no money:
// records each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

/** An amount in minor units (cents): what payment APIs take, never a float of euros. */
const amount = () =>
  z.number({ invalid_type_error: "must be a number of cents" })
    .int("must be a whole number of cents").positive("must be more than 0")
    .max(100_000_000, "must be at most 100000000 cents");

/** An ISO 4217 code, answered in capitals. */
const currency = () =>
  z.string({ invalid_type_error: "must be a string" })
    .regex(/^[A-Za-z]{3}$/, "must be a three-letter currency code, e.g. EUR")
    .transform((s) => s.toUpperCase());

export default demoFunction("payments", {
  // → charge_id (read by the refund), booking_id, amount, currency, status
  charge: action(
    z.strictObject({
      bookingId: field.id(),
      guestId: field.id(),
      amount: amount(),
      currency: currency(),
    }),
    ({ bookingId, guestId, amount, currency }) => ({
      charge_id: stableId("ch", bookingId, guestId, amount, currency),
      booking_id: bookingId,
      amount,
      currency,
      status: "captured",
    }),
  ),
  // → refund_id, charge_id, status: refunds the whole charge
  refund: action(
    z.strictObject({
      chargeId: z.string({ invalid_type_error: "must be a string" })
        .regex(/^ch_[0-9a-f]{16}$/, "must be the charge_id a charge answered (ch_…)"),
      reason: field.name().optional(),
    }),
    ({ chargeId, reason }) => ({
      refund_id: stableId("re", chargeId),
      charge_id: chargeId,
      status: "refunded",
      ...(reason ? { reason } : {}),
    }),
  ),
});
