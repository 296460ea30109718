// A minimal stdio LSP server for the activation test. It appends every message it receives to the JSONL file
// named by argv[2], advertises the cra commands, and answers executeCommand: `slow` symbols wait for
// $/cancelRequest (answered with RequestCancelled), others answer at once with an ActionResult-like object.
"use strict";
const fs = require("node:fs");

const logPath = process.argv[2];
const pending = new Map();
let buffer = Buffer.alloc(0);

function send(message) {
  const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", ...message }), "utf8");
  process.stdout.write(`Content-Length: ${body.length}\r\n\r\n`);
  process.stdout.write(body);
}

function handle(message) {
  fs.appendFileSync(logPath, JSON.stringify(message) + "\n");
  if (message.method === "initialize") {
    send({
      id: message.id,
      result: {
        capabilities: {
          codeActionProvider: { resolveProvider: true },
          executeCommandProvider: {
            commands: ["cra.plan", "cra.scaffold", "cra.implement", "cra.tests", "cra.document", "cra.insertDoc", "cra.trust"],
          },
        },
      },
    });
  } else if (message.method === "workspace/executeCommand") {
    const argument = message.params.arguments[0];
    if (argument.symbol === "slow") {
      pending.set(message.id, true);
    } else {
      send({ id: message.id, result: { ok: true, verdict: { message: `compiled ${argument.symbol}` } } });
    }
  } else if (message.method === "$/cancelRequest") {
    if (pending.delete(message.params.id)) {
      send({ id: message.params.id, error: { code: -32800, message: "cancelled" } });
    }
  } else if (message.method === "shutdown") {
    send({ id: message.id, result: null });
  } else if (message.method === "exit") {
    process.exit(0);
  } else if (message.id !== undefined && message.method) {
    send({ id: message.id, result: null });
  }
}

process.stdin.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  for (;;) {
    const headerEnd = buffer.indexOf("\r\n\r\n");
    if (headerEnd < 0) return;
    const match = /Content-Length: (\d+)/i.exec(buffer.subarray(0, headerEnd).toString("ascii"));
    const length = Number(match[1]);
    if (buffer.length < headerEnd + 4 + length) return;
    const body = buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString("utf8");
    buffer = buffer.subarray(headerEnd + 4 + length);
    handle(JSON.parse(body));
  }
});
