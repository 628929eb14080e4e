// What a wf database error answers over HTTP: the HTTP column of the one SQLSTATE table, whose
// other columns (the worker's retry or not, the CLI's exit status) are in consumer/wf/errors.py.
// tests/consumer/test_sqlstates.py keeps this map equal to that table.
//
// A SQLSTATE matches its own entry, else the entry of its class (its first two characters). The
// ones here are a caller's mistake; anything else is a fault of wf or of its set-up: 500.
const CALLER_ERRORS = new Map<string, number>([
  ["22023", 400], // bad input: a definition, a missing field, a reused idempotency key
  ["22", 400], // other data exceptions: a value PostgreSQL cannot take (U+0000 in the input, …)
  ["54000", 400], // input larger than the max_input_bytes setting
  ["55000", 400], // an object not in the state the call needs: an inactive workflow
  ["P0002", 404], // unknown workflow or run
]);

/** The 4xx status for a caller's mistake, or undefined when the error is not one (answer 500). */
export function callerErrorStatus(sqlstate: string): number | undefined {
  return CALLER_ERRORS.get(sqlstate) ?? CALLER_ERRORS.get(sqlstate.slice(0, 2));
}
