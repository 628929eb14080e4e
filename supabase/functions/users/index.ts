// Demo `users`: the user row and its host and guest accounts (templates/user-signup.json).
// Records each call in demo.outbox instead of writing an application table (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

const account = (kind: "host" | "guest") =>
  action(z.strictObject({ userId: field.id() }), ({ userId }) => ({
    account_id: stableId(kind, userId),
    user_id: userId,
    kind,
  }));

export default demoFunction("users", {
  // → user_id (one per auth user), auth_user_id, email, name
  create_user: action(
    z.strictObject({
      authUserId: field.id(),
      email: field.email(),
      firstName: field.text(100),
      lastName: field.text(100),
    }),
    ({ authUserId, email, firstName, lastName }) => ({
      user_id: stableId("user", authUserId),
      auth_user_id: authUserId,
      email,
      name: `${firstName} ${lastName}`,
    }),
  ),
  // → account_id, user_id, kind
  create_host_account: account("host"),
  create_guest_account: account("guest"),
});
