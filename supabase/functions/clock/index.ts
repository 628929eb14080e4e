// Answers with the moment the call arrived (ms since the epoch), so the benchmark can
// measure enqueue → call latency from the step's stored output, with no shared state.
import { authorize, verifySignature } from "../_shared/contract.ts";

export default {
  async fetch(req: Request): Promise<Response> {
    const receivedAt = performance.timeOrigin + performance.now();
    const denied = authorize(req) ??
      (Deno.env.get("WF_SIGNING_SECRET") ? verifySignature(req, await req.text()) : null);
    return denied ??
      new Response(JSON.stringify({ success: true, data: { received_at: receivedAt } }), {
        headers: { "content-type": "application/json" },
      });
  },
};
