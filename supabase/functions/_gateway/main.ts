// Local stand-in for Supabase's functions gateway: serves every supabase/functions/<name>/index.ts
// at /functions/v1/<name> from ONE Deno process on one port.
//
// Handler convention: each index.ts has `export default { fetch(req: Request): Response | Promise<Response> }`
// (the shape `deno serve` also runs). The gateway imports every module once at start-up and calls
// its fetch in-process, so a request costs no process spawn and no extra hop; module state (echo's
// call log, flaky's counters) lives as long as the gateway.
//
// Folders whose name starts with "_" (shared code, this gateway) or does not match wf's function
// name rule are not functions. Usage: main.ts [--port N]   (else $WF_GATEWAY_PORT, else 54321;
// 0 picks a free port, and the readiness line tells which).

type Handler = { fetch(req: Request): Response | Promise<Response> };

const NAME = /^[a-z0-9][a-z0-9_-]{0,46}$/; // wf's function-name rule (README, Definition reference)
const PREFIX = "/functions/v1/";
const root = new URL("../", import.meta.url);

function parsePort(args: string[]): number {
  const i = args.indexOf("--port");
  const raw = i >= 0 ? args[i + 1] : Deno.env.get("WF_GATEWAY_PORT") ?? "54321";
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port: ${raw}`);
  return port;
}

async function loadFunctions(): Promise<Map<string, Handler>> {
  const functions = new Map<string, Handler>();
  for await (const entry of Deno.readDir(root)) {
    if (!entry.isDirectory || !NAME.test(entry.name)) continue;
    const index = new URL(`${entry.name}/index.ts`, root);
    try {
      await Deno.stat(index);
    } catch {
      continue;
    }
    const mod = await import(index.href);
    if (typeof mod.default?.fetch !== "function") {
      throw new Error(`${entry.name}/index.ts must \`export default { fetch(req) }\``);
    }
    functions.set(entry.name, mod.default);
  }
  return functions;
}

const json = (body: unknown, status: number) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

const functions = await loadFunctions();
const port = parsePort(Deno.args);

Deno.serve({
  hostname: "127.0.0.1", // a test fixture with no auth when no token is set: never expose it
  port,
  onListen({ port }) {
    console.error(`functions: ${[...functions.keys()].sort().join(", ")}`);
    console.log(`gateway listening on http://127.0.0.1:${port}/functions/v1`);
  },
}, async (req) => {
  const { pathname } = new URL(req.url);
  const name = pathname.startsWith(PREFIX) ? pathname.slice(PREFIX.length).split("/", 1)[0] : "";
  const fn = functions.get(name);
  if (!fn) return json({ success: false, error: `function not found: ${name || pathname}` }, 404);
  try {
    return await fn.fetch(req);
  } catch (e) {
    // What Supabase does with an uncaught error: a 500, and the stack in the function's log.
    console.error(`${name}:`, e);
    return json({ success: false, error: `function ${name} crashed` }, 500);
  }
});
