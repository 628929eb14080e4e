// Demo `proposal`: a proposal's status, and reserving an order (templates/proposal-status-change.json,
// templates/patterns/fan-out-fan-in.json). Records each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export default demoFunction("proposal", {
  // → proposal_id, status
  update: action(
    z.strictObject({ proposalId: field.id(), status: field.proposalStatus() }),
    ({ proposalId, status }) => ({ proposal_id: proposalId, status }),
  ),
  // → order_id, reservation_id
  reserve: action(z.strictObject({ orderId: field.id() }), ({ orderId }) => ({
    order_id: orderId,
    reservation_id: stableId("res", orderId),
  })),
});
