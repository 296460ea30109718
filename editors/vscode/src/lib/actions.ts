// The cra actions and the argument object every cra server command takes.
// Pure module: no `vscode` import, so node's test runner can load it directly.

export const ACTIONS = ["plan", "scaffold", "implement", "tests", "document"] as const;
export type Action = (typeof ACTIONS)[number];

/** The argument object of every cra server command (`cra.<action>`, `cra.insertDoc`, `cra.trust`). */
export interface CommandArgument {
  uri: string;
  symbol: string | null;
  version: number | null;
}

export class InvalidActionError extends Error {
  constructor(action: string) {
    super(`unknown cra action "${action}"; expected one of: ${ACTIONS.join(", ")}`);
    this.name = "InvalidActionError";
  }
}

/** Whole-file actions: they run without a function at the cursor (symbol null). */
export const FILE_ACTIONS: readonly Action[] = ["plan", "scaffold"];

export function needsFunction(action: Action): boolean {
  return !FILE_ACTIONS.includes(action);
}

export function isAction(value: string): value is Action {
  return (ACTIONS as readonly string[]).includes(value);
}

/** Server-side command id; vscode-languageclient registers these itself, so the extension never does. */
export function serverCommand(action: Action): string {
  if (!isAction(action)) {
    throw new InvalidActionError(action);
  }
  return `cra.${action}`;
}

/** The extension's own palette command id for an action (distinct from the server's id). */
export function paletteCommand(action: Action): string {
  if (!isAction(action)) {
    throw new InvalidActionError(action);
  }
  return `cra.run.${action}`;
}

/** Code action kind the server uses for an action. */
export function codeActionKind(action: Action): string {
  if (!isAction(action)) {
    throw new InvalidActionError(action);
  }
  return `refactor.rewrite.cra.${action}`;
}

export function commandArgument(uri: string, symbol: string | null, version: number | null): CommandArgument {
  if (typeof uri !== "string" || uri.length === 0) {
    throw new TypeError("a cra command needs the document's URI");
  }
  if (version !== null && !Number.isInteger(version)) {
    throw new TypeError(`document version must be an integer, got ${String(version)}`);
  }
  return { uri, symbol: symbol && symbol.length > 0 ? symbol : null, version };
}

/** `{command, arguments}` params of a `workspace/executeCommand` request for an action. */
export function executeCommandParams(
  action: Action,
  argument: CommandArgument,
): { command: string; arguments: [CommandArgument] } {
  return { command: serverCommand(action), arguments: [argument] };
}
