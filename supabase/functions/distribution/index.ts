// Demo `distribution`: sends a published listing to one partner channel; listing-published's
// `distribute` step maps over the channels (for_each), one call per channel
// (templates/listing-published.json). Records each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field, stableId } from "../_shared/outbox.ts";

export default demoFunction("distribution", {
  // → listing_id, url, channel, distribution_id
  publish: action(
    z.strictObject({ listingId: field.id(), url: field.url(), channel: field.name() }),
    ({ listingId, url, channel }) => ({
      listing_id: listingId,
      url,
      channel,
      distribution_id: stableId("dist", listingId, url, channel),
    }),
  ),
});
