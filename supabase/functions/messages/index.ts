// Local stand-in for the seed's `messages` function (templates/proposal-created.json): records each
// call and answers with a thread id, so the seed workflow runs end to end on the local gateway.
import { recorder } from "../_shared/recorder.ts";

export default recorder(({ action, payload }) => ({
  action,
  thread_id: `thread-${payload.proposalId ?? "unknown"}`,
}));
