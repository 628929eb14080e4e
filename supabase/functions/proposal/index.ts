// Demo `proposal`: reserving an order (templates/patterns/fan-out-fan-in.json). Records each call
// in demo.outbox (_shared/outbox.ts). A proposal's status is not set here: proposal-status-change
// does that in SQL, in a sql step (demo.set_proposal_status in supabase/demo.sql).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export default demoFunction("proposal", {
  // → order_id, reservation_id
  reserve: action(z.strictObject({ orderId: field.id() }), ({ orderId }) => ({
    order_id: orderId,
    reservation_id: stableId("res", orderId),
  })),
});
