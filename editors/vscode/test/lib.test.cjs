// Unit tests of the pure modules (compiled to out/lib by esbuild.mjs): no VS Code involved.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const lib = (name) => require(path.join(__dirname, "..", "out", "lib", `${name}.js`));
const actions = lib("actions");
const settings = lib("settings");
const cursor = lib("cursorFunction");
const outcome = lib("outcome");

test("each action maps to its server command, palette command and code action kind", () => {
  assert.deepEqual([...actions.ACTIONS], ["plan", "scaffold", "implement", "tests", "document"]);
  assert.equal(actions.serverCommand("implement"), "cra.implement");
  assert.equal(actions.paletteCommand("tests"), "cra.run.tests");
  assert.equal(actions.codeActionKind("document"), "refactor.rewrite.cra.document");
  assert.equal(actions.needsFunction("implement"), true);
  assert.equal(actions.needsFunction("plan"), false);
  assert.throws(() => actions.serverCommand("refactor"), /unknown cra action "refactor"; expected one of: plan/);
});

test("command arguments carry uri, symbol and version; bad input is refused", () => {
  assert.deepEqual(actions.executeCommandParams("plan", actions.commandArgument("file:///a.c", "f", 3)), {
    command: "cra.plan",
    arguments: [{ uri: "file:///a.c", symbol: "f", version: 3 }],
  });
  assert.deepEqual(actions.commandArgument("file:///a.c", "", null), { uri: "file:///a.c", symbol: null, version: null });
  assert.throws(() => actions.commandArgument("", "f", 1), /needs the document's URI/);
  assert.throws(() => actions.commandArgument("file:///a.c", "f", 1.5), /version must be an integer/);
});

test("settings become initializationOptions with only the models that are set", () => {
  const values = { trust: true, "models.coding": "  /m/coder.gguf ", "models.router": "", serverCommand: ["python", "-m", "cra"] };
  const read = settings.readSettings((key) => values[key]);
  assert.deepEqual(read.serverCommand, ["python", "-m", "cra"]);
  assert.deepEqual(settings.serverOptions(read), { trust: true, config: { models: { coding: { model: "/m/coder.gguf" } } } });
  const withPath = settings.readSettings((key) => ({ configPath: "/w/cra.toml", "models.router": "qwen" })[key]);
  assert.deepEqual(settings.serverOptions(withPath), {
    trust: false,
    config: { models: { router: { model: "qwen" } } },
    configFile: "/w/cra.toml",
  });
  assert.deepEqual(settings.didChangeConfigurationSettings(withPath).cra, settings.serverOptions(withPath));
});

test("defaults and bad settings", () => {
  const empty = settings.readSettings(() => undefined);
  assert.deepEqual(empty.serverCommand, ["cra", "lsp"]);
  assert.deepEqual(settings.serverOptions(empty), { trust: false, config: {} });
  assert.throws(() => settings.readSettings((k) => (k === "serverCommand" ? "cra lsp" : undefined)), /cra\.serverCommand" must be a list of strings/);
  assert.throws(() => settings.readSettings((k) => (k === "serverCommand" ? [] : undefined)), /must name the server program/);
  assert.throws(() => settings.readSettings((k) => (k === "trust" ? "yes" : undefined)), /cra\.trust" must be true or false/);
  assert.throws(() => settings.readSettings((k) => (k === "models.coding" ? 3 : undefined)), /cra\.models\.coding" must be a string/);
  const a = settings.readSettings(() => undefined);
  const b = settings.readSettings((k) => (k === "serverCommand" ? ["cra", "lsp", "--verbose"] : undefined));
  assert.equal(settings.needsRestart(a, b), true);
  assert.equal(settings.needsRestart(a, settings.readSettings((k) => (k === "trust" ? true : undefined))), false);
});

const SOURCE = `#include <stdio.h>
#define MAX(a, b) \\
    ((a) > (b) ? (a) : (b))

/* int fake(void) { } in a comment */
struct point { int x; int y; };
static const char *names[] = { "a{", "b" };

int declared_only(int x);

static int
add(int a, int b)
{
    const char *s = "}";  // a brace in a string
    if (a > b) {
        return a;
    }
    return a + b;
}

void __attribute__((unused)) noop(void) { }
`;

test("the text scanner finds definitions and prototypes, not macros, structs or initialisers", () => {
  const found = cursor.scanFunctions(SOURCE).map((f) => [f.name, f.startLine, f.endLine, f.hasBody]);
  assert.deepEqual(found, [
    ["declared_only", 8, 8, false],
    ["add", 10, 18, true],
    ["noop", 20, 20, true],
  ]);
  assert.equal(cursor.functionFromText(SOURCE, 15), "add");
  assert.equal(cursor.functionFromText(SOURCE, 10), "add");
  assert.equal(cursor.functionFromText(SOURCE, 8), "declared_only");
  assert.equal(cursor.functionFromText(SOURCE, 5), null);
  assert.equal(cursor.functionFromText(SOURCE, 2), null);
});

test("document symbols win over the text scanner and the innermost function is chosen", () => {
  const range = (a, b) => ({ start: { line: a, character: 0 }, end: { line: b, character: 1 } });
  const symbols = [
    { name: "outer", kind: 11, range: range(0, 20), children: [{ name: "inner(int)", kind: 11, range: range(5, 8) }] },
    { name: "point", kind: 22, range: range(21, 22) },
  ];
  assert.equal(cursor.functionFromSymbols(symbols, { line: 6, character: 3 }), "inner");
  assert.equal(cursor.functionFromSymbols(symbols, { line: 2, character: 0 }), "outer");
  assert.equal(cursor.functionFromSymbols(symbols, { line: 21, character: 0 }), null);
  // Flat SymbolInformation with LSP's one-based kinds.
  const flat = [{ name: "f", kind: 12, location: { range: range(3, 4) } }];
  assert.equal(cursor.functionFromSymbols(flat, { line: 3, character: 0 }, cursor.LSP_FUNCTION_KINDS), "f");
  assert.equal(cursor.functionAtCursor(symbols, SOURCE, { line: 15, character: 0 }), "outer");
  assert.equal(cursor.functionAtCursor(undefined, SOURCE, { line: 15, character: 0 }), "add");
});

test("outcomes: results, failures and cancellations", () => {
  assert.deepEqual(outcome.describeResult("implement", "add", { ok: true, verdict: { message: "compiled" } }), {
    severity: "info",
    message: "cra implement add: done (compiled)",
  });
  assert.deepEqual(outcome.describeResult("tests", "add", { ok: false, error: "gcc failed" }), {
    severity: "error",
    message: "cra tests add failed: gcc failed",
  });
  assert.equal(outcome.describeResult("plan", null, { cancelled: true }).message, "cra plan: cancelled");
  assert.equal(outcome.describeResult("plan", "f", null).message, "cra plan f: done");
  assert.equal(outcome.describeFailure("plan", "f", { code: -32800, message: "x" }).severity, "info");
  assert.deepEqual(outcome.describeFailure("plan", "f", new Error("no model configured")), {
    severity: "error",
    message: "cra plan f failed: no model configured",
  });
});
