// Demo `seo`: asks search engines to index a page (templates/listing-published.json). Records
// each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field } from "../_shared/outbox.ts";

export default demoFunction("seo", {
  // → url, status
  request_indexing: action(z.strictObject({ url: field.url() }), ({ url }) => ({
    url,
    status: "submitted",
  })),
});
