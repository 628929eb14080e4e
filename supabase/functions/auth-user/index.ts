// Demo `auth-user`: creates the sign-in identity of a new user (templates/user-signup.json).
// Instead of calling Supabase Auth it records the call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export default demoFunction("auth-user", {
  // → user_id (one per email address, whatever its case), email
  signup: action(z.strictObject({ email: field.email() }), ({ email }) => ({
    user_id: stableId("auth", email.toLowerCase()),
    email,
  })),
});
