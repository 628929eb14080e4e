// Every way a function can go wrong, on demand, for the fault and classification tests.
import { type Call, contract, fail, ok } from "../_shared/contract.ts";

const rateLimited = new Map<string, number>();
// overlap: calls in flight per key, and the most seen at once (a test of max_parallel counts here)
const inFlight = new Map<string, number>();
const mostInFlight = new Map<string, number>();

// Deno.serve offers no way to close a socket without answering. Its status line and headers
// ("200", chunked) go out when the Response is returned; erroring the body stream then makes Deno
// abort the connection mid-body, so reading the answer fails (curl exit 18, aiohttp
// ClientPayloadError, httpx RemoteProtocolError). A string, not an Error, keeps Deno's log of it
// to one line.
function dropConnection(): Response {
  return new Response(
    new ReadableStream({ start: (c) => c.error("misbehave: connection dropped on purpose") }),
  );
}

const actions: Record<string, (call: Call) => Response | Promise<Response>> = {
  rate_limited({ payload }) {
    const key = String(payload.key ?? "");
    const times = Number(payload.times ?? 1);
    const count = (rateLimited.get(key) ?? 0) + 1;
    rateLimited.set(key, count);
    if (count > times) return ok({ calls: count });
    return fail("rate limited", 429, {}, { "retry-after": String(payload.retry_after ?? 2) });
  },
  bad_request: ({ payload }) =>
    fail(`bad request: ${payload.reason ?? "rejected on purpose"}`, 400),
  async slow({ payload }) {
    const ms = Number(payload.ms ?? 1000);
    await new Promise((resolve) => setTimeout(resolve, ms));
    return ok({ slept_ms: ms });
  },
  async overlap({ payload }) {
    const key = String(payload.key ?? "");
    const arrivedMs = Date.now();
    const now = (inFlight.get(key) ?? 0) + 1;
    inFlight.set(key, now);
    mostInFlight.set(key, Math.max(mostInFlight.get(key) ?? 0, now));
    try {
      await new Promise((resolve) => setTimeout(resolve, Number(payload.ms ?? 100)));
    } finally {
      inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    }
    return ok({
      item: payload.item ?? null,
      most_in_flight: mostInFlight.get(key),
      in_flight_on_arrival: now,
      arrived_ms: arrivedMs,
    });
  },
  not_json: () => new Response("this is not json", { headers: { "content-type": "text/plain" } }),
  drop: dropConnection,
  fail_plain: () => fail("business rule violated"),
  fail_retryable: () => fail("temporarily unavailable", 200, { retryable: true }),
  big({ payload }) {
    const bytes = Number(payload.bytes ?? 1024 * 1024);
    return ok({ bytes, blob: "x".repeat(bytes) });
  },
  status({ payload }) {
    const status = Number(payload.status ?? 500);
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      return fail(`bad request: status must be 200..599, got ${payload.status}`, 400);
    }
    // The Fetch spec forbids a body on these.
    if ([204, 205, 304].includes(status)) return new Response(null, { status });
    return status < 400 ? ok({ status }, status) : fail(`status ${status}`, status);
  },
};

export default contract((call) => {
  const act = actions[call.action];
  return act ? act(call) : fail(`unknown action: ${call.action}`, 400);
});
