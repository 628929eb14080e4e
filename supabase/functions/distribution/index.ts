// Demo `distribution`: sends a published listing to partner channels
// (templates/listing-published.json). Records each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export default demoFunction("distribution", {
  // → listing_id, url, channels, distribution_id
  publish: action(
    z.strictObject({
      listingId: field.id(),
      url: field.url(),
      channels: z.array(field.name(), { invalid_type_error: "must be a list of channel names" })
        .min(1, "must name at least one channel").max(20, "must name at most 20 channels"),
    }),
    ({ listingId, url, channels }) => ({
      listing_id: listingId,
      url,
      channels: [...new Set(channels)],
      distribution_id: stableId("dist", listingId, url),
    }),
  ),
});
