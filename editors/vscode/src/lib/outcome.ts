// Turning a cra command's result or failure into what the user is told. Pure module.

export type Severity = "info" | "warning" | "error";
export interface Outcome {
  severity: Severity;
  message: string;
}

/** JSON-RPC code of a cancelled request (LSP `RequestCancelled`). */
export const REQUEST_CANCELLED = -32800;

function label(action: string, symbol: string | null): string {
  return symbol ? `cra ${action} ${symbol}` : `cra ${action}`;
}

/**
 * A server result: null (nothing to say) or an object shaped like the orchestrator's ActionResult
 * (`ok`, `error`, `cancelled`, `verdict.message`). Unknown shapes are reported as plain success.
 */
export function describeResult(action: string, symbol: string | null, result: unknown): Outcome {
  const what = label(action, symbol);
  if (result === null || result === undefined || typeof result !== "object") {
    return { severity: "info", message: `${what}: done` };
  }
  const r = result as { ok?: unknown; error?: unknown; cancelled?: unknown; verdict?: { message?: unknown } };
  if (r.cancelled === true) {
    return { severity: "info", message: `${what}: cancelled` };
  }
  if (r.ok === false) {
    const reason = typeof r.error === "string" && r.error ? r.error : "the server reported a failure";
    return { severity: "error", message: `${what} failed: ${reason}` };
  }
  const verdict = typeof r.verdict?.message === "string" && r.verdict.message ? ` (${r.verdict.message})` : "";
  return { severity: "info", message: `${what}: done${verdict}` };
}

/** A rejected request: cancellation is not an error; anything else shows the server's message. */
export function describeFailure(action: string, symbol: string | null, error: unknown): Outcome {
  const what = label(action, symbol);
  const e = error as { code?: unknown; name?: unknown; message?: unknown } | null;
  if (e && (e.code === REQUEST_CANCELLED || e.name === "Canceled" || e.name === "CancellationError")) {
    return { severity: "info", message: `${what}: cancelled` };
  }
  const message = e && typeof e.message === "string" && e.message ? e.message : String(error);
  return { severity: "error", message: `${what} failed: ${message}` };
}
