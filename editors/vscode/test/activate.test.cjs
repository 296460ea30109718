// Loads the bundled extension (out/extension.js) against the `vscode` stand-in and a recording stdio server:
// checks what activate() registers, the options the language client starts the server with, and that the
// palette commands send executeCommand (and $/cancelRequest on cancel) without re-registering server ids.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const Module = require("node:module");
const { createStub } = require("./support/vscodeStub.cjs");

const bundle = path.join(__dirname, "..", "out", "extension.js");
const server = path.join(__dirname, "support", "recordingServer.cjs");

function loadExtension(stub) {
  const originalLoad = Module._load;
  Module._load = function (request, parent, isMain) {
    if (request === "vscode") return stub.api;
    return originalLoad.call(this, request, parent, isMain);
  };
  try {
    delete require.cache[require.resolve(bundle)];
    return require(bundle);
  } finally {
    Module._load = originalLoad;
  }
}

function readLog(logPath) {
  if (!fs.existsSync(logPath)) return [];
  return fs.readFileSync(logPath, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

async function waitFor(predicate, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = predicate();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function cEditor(text, line, character) {
  const uri = { scheme: "file", fsPath: "/tmp/demo.c", toString: () => "file:///tmp/demo.c" };
  return {
    document: { uri, languageId: "c", version: 7, getText: () => text },
    selection: { active: { line, character } },
  };
}

const C_SOURCE = "#include <stdio.h>\n\nint add(int a, int b)\n{\n    return 0;\n}\n\nint slow(void)\n{\n    return 1;\n}\n";

async function activated(t, extraSettings = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cra-vscode-"));
  const logPath = path.join(dir, "messages.jsonl");
  const stub = createStub({
    "cra.serverCommand": [process.execPath, server, logPath],
    "cra.trust": false,
    "cra.models.coding": "/models/coder.gguf",
    ...extraSettings,
  });
  const extension = loadExtension(stub);
  const context = { subscriptions: [] };
  await extension.activate(context);
  t.after(async () => {
    await extension.deactivate();
    for (const item of context.subscriptions) item.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { stub, extension, logPath };
}

test("activate registers the palette commands and starts the server with the settings", async (t) => {
  const { stub, logPath } = await activated(t);
  const ours = ["cra.run.plan", "cra.run.scaffold", "cra.run.implement", "cra.run.tests", "cra.run.document", "cra.trustWorkspace"];
  for (const id of ours) assert.ok(stub.state.commands.has(id), `${id} registered`);

  const initialize = (await waitFor(() => readLog(logPath).find((m) => m.method === "initialize"), "initialize")).params;
  assert.deepEqual(initialize.initializationOptions, {
    trust: false,
    config: { models: { coding: { model: "/models/coder.gguf" } } },
  });
  // The server's command ids are registered by vscode-languageclient (once: the stand-in throws on duplicates).
  await waitFor(() => stub.state.commands.has("cra.implement"), "server commands registered");
  for (const id of ["cra.plan", "cra.implement", "cra.insertDoc", "cra.trust"]) {
    assert.equal(stub.state.registrations.filter((r) => r === id).length, 1, `${id} registered once`);
  }
  assert.equal(stub.state.messages.filter((m) => m.severity === "error").length, 0, JSON.stringify(stub.state.messages));
});

test("a palette command runs the server command for the function at the cursor", async (t) => {
  const { stub, logPath } = await activated(t);
  await waitFor(() => stub.state.commands.has("cra.implement"), "client ready");
  stub.state.activeTextEditor = cEditor(C_SOURCE, 4, 4);
  await stub.state.commands.get("cra.run.implement")();

  const request = readLog(logPath).find((m) => m.method === "workspace/executeCommand");
  assert.deepEqual(request.params, {
    command: "cra.implement",
    arguments: [{ uri: "file:///tmp/demo.c", symbol: "add", version: 7 }],
  });
  assert.equal(stub.state.progress.length, 1);
  assert.equal(stub.state.progress[0].options.cancellable, true);
  assert.deepEqual(stub.state.messages.at(-1), { severity: "info", text: "cra implement add: done (compiled add)" });
});

test("cancelling the progress notification sends $/cancelRequest and reports a cancellation", async (t) => {
  const { stub, logPath } = await activated(t);
  await waitFor(() => stub.state.commands.has("cra.implement"), "client ready");
  stub.state.activeTextEditor = cEditor(C_SOURCE, 9, 2);
  const running = stub.state.commands.get("cra.run.document")();
  const request = await waitFor(
    () => readLog(logPath).find((m) => m.method === "workspace/executeCommand"),
    "executeCommand request",
  );
  assert.deepEqual(request.params.arguments, [{ uri: "file:///tmp/demo.c", symbol: "slow", version: 7 }]);
  stub.state.progress[0].source.cancel();
  await running;
  const cancel = readLog(logPath).find((m) => m.method === "$/cancelRequest");
  assert.equal(cancel.params.id, request.id);
  assert.deepEqual(stub.state.messages.at(-1), { severity: "info", text: "cra document slow: cancelled" });
});

test("changing a cra setting pushes didChangeConfiguration; trustWorkspace sets trust", async (t) => {
  const { stub, logPath } = await activated(t);
  await waitFor(() => stub.state.commands.has("cra.implement"), "client ready");
  await stub.state.commands.get("cra.trustWorkspace")();
  assert.equal(stub.state.settings["cra.trust"], true);
  const change = await waitFor(
    () => readLog(logPath).find((m) => m.method === "workspace/didChangeConfiguration"),
    "didChangeConfiguration",
  );
  assert.deepEqual(change.params.settings, {
    cra: { trust: true, config: { models: { coding: { model: "/models/coder.gguf" } } } },
  });
});

test("a palette command outside a function warns and sends nothing", async (t) => {
  const { stub, logPath } = await activated(t);
  await waitFor(() => stub.state.commands.has("cra.implement"), "client ready");
  stub.state.activeTextEditor = cEditor(C_SOURCE, 0, 0);
  await stub.state.commands.get("cra.run.tests")();
  assert.equal(readLog(logPath).filter((m) => m.method === "workspace/executeCommand").length, 0);
  assert.deepEqual(stub.state.messages.at(-1), { severity: "warning", text: "cra tests: no C function at the cursor." });
});

test("a whole-file action runs outside any function with symbol null", async (t) => {
  const { stub, logPath } = await activated(t);
  await waitFor(() => stub.state.commands.has("cra.implement"), "client ready");
  stub.state.activeTextEditor = cEditor(C_SOURCE, 0, 0);
  await stub.state.commands.get("cra.run.plan")();
  const request = readLog(logPath).find((m) => m.method === "workspace/executeCommand");
  assert.deepEqual(request.params, { command: "cra.plan", arguments: [{ uri: "file:///tmp/demo.c", symbol: null, version: 7 }] });
});

test("a bad serverCommand setting is reported, not thrown", async (t) => {
  const stub = createStub({ "cra.serverCommand": "cra lsp" });
  const extension = loadExtension(stub);
  const context = { subscriptions: [] };
  await extension.activate(context);
  t.after(() => context.subscriptions.forEach((item) => item.dispose()));
  assert.match(stub.state.messages.at(-1).text, /cra\.serverCommand.*list of strings/);
  assert.ok(stub.state.commands.has("cra.run.implement"));
});
