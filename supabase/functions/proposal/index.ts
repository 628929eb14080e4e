// Demo `proposal`: reserving an order or a booking's dates, releasing the reservation, and the
// host's confirmation (templates/patterns/fan-out-fan-in.json, booking-payment.json). Records
// each call in demo.outbox (_shared/outbox.ts). A proposal's status is not set here:
// proposal-status-change does that in SQL, in a sql step (demo.set_proposal_status in
// supabase/demo.sql).
//
// The booking's failure on demand: `confirm` with `declined: true` is the host declining — a
// refusal no retry can change, answered at the boundary like a payload the action refuses (a
// 400 naming the field, which wf does not retry): the step is dead at once and booking-payment
// releases the reservation and refunds the charge (compensate).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export const DECLINED = "the host declined the booking";

export default demoFunction("proposal", {
  // → order_id, reservation_id
  reserve: action(z.strictObject({ orderId: field.id() }), ({ orderId }) => ({
    order_id: orderId,
    reservation_id: stableId("res", orderId),
  })),
  // → reservation_id, status: undoes reserve
  release: action(z.strictObject({ reservationId: field.id() }), ({ reservationId }) => ({
    reservation_id: reservationId,
    status: "released",
  })),
  // → order_id, reservation_id, confirmation_id, status
  confirm: action(
    z.strictObject({
      orderId: field.id(),
      reservationId: field.id(),
      declined: z.boolean({ invalid_type_error: "must be true or false" })
        .refine((declined) => !declined, DECLINED).optional(),
    }),
    ({ orderId, reservationId }) => ({
      order_id: orderId,
      reservation_id: reservationId,
      confirmation_id: stableId("conf", orderId, reservationId),
      status: "confirmed",
    }),
  ),
});
