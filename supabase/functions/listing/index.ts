// Demo `listing`: publishing a listing and the host's listing count
// (templates/listing-published.json). Records each call in demo.outbox (_shared/outbox.ts).
import { z } from "zod";
import { action, demoFunction, field } from "../_shared/outbox.ts";

export const LISTINGS_URL = "https://listings.example.com/l/";

export default demoFunction("listing", {
  // → listing_id, status, url (the public page, read by the later steps)
  publish: action(z.strictObject({ listingId: field.id() }), ({ listingId }) => ({
    listing_id: listingId,
    status: "published",
    url: LISTINGS_URL + encodeURIComponent(listingId),
  })),
  // → host_id, counter
  update_host_count: action(z.strictObject({ hostId: field.id() }), ({ hostId }) => ({
    host_id: hostId,
    counter: "published_listings",
  })),
});
