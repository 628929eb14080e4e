// The cheapest function that still honours the contract's auth: the benchmark's baseline.
import { authorize, verifySignature } from "../_shared/contract.ts";

const DONE = '{"success":true,"data":{}}';

export default {
  // Does not parse the envelope: it measures the engine, not the function.
  async fetch(req: Request): Promise<Response> {
    const denied = authorize(req) ??
      (Deno.env.get("WF_SIGNING_SECRET") ? verifySignature(req, await req.text()) : null);
    return denied ?? new Response(DONE, { headers: { "content-type": "application/json" } });
  },
};
