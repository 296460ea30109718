// VS Code side of cra: starts the cra language server for C files and offers one palette command per action.
// The server's own command ids (cra.implement, ...) are registered by vscode-languageclient from the server's
// executeCommandProvider; the palette commands here use separate ids (cra.run.<action>) and call the server
// under a cancellable notification, because server-created progress has no cancel button.
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";
import {
  ACTIONS,
  type Action,
  commandArgument,
  executeCommandParams,
  needsFunction,
  paletteCommand,
} from "./lib/actions";
import { functionAtCursor, type SymbolLike } from "./lib/cursorFunction";
import { describeFailure, describeResult, type Outcome } from "./lib/outcome";
import {
  type CraSettings,
  didChangeConfigurationSettings,
  needsRestart,
  readSettings,
  serverOptions,
} from "./lib/settings";

const SECTION = "cra";
let client: LanguageClient | undefined;
let current: CraSettings | undefined;

function loadSettings(): CraSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  return readSettings((key) => config.get(key));
}

function createClient(settings: CraSettings, output: vscode.OutputChannel): LanguageClient {
  const [command, ...args] = settings.serverCommand;
  // vscode-languageclient appends `--stdio` to `args` for TransportKind.stdio, so the default setting starts
  // `cra lsp --stdio` (the server accepts the flag; stdio is its default transport).
  const server: ServerOptions = { command, args, transport: TransportKind.stdio };
  const options: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "c" },
      { scheme: "untitled", language: "c" },
    ],
    initializationOptions: serverOptions(settings),
    outputChannel: output,
    middleware: {
      workspace: {
        // A server that asks for section "cra" gets the same shape as initializationOptions, not the raw
        // settings tree, so both paths carry one format.
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) return answers;
          return params.items.map((item, index) =>
            item.section === SECTION ? serverOptions(current ?? settings) : answers[index],
          );
        },
      },
    },
  };
  return new LanguageClient("cra", "cra", server, options);
}

async function startClient(settings: CraSettings, output: vscode.OutputChannel): Promise<void> {
  client = createClient(settings, output);
  try {
    await client.start();
  } catch (error) {
    void vscode.window.showErrorMessage(
      `cra: could not start the language server ${JSON.stringify(settings.serverCommand)}: ${String(error)}. ` +
        "Check the setting cra.serverCommand.",
    );
  }
}

function show(outcome: Outcome): void {
  if (outcome.severity === "error") void vscode.window.showErrorMessage(outcome.message);
  else if (outcome.severity === "warning") void vscode.window.showWarningMessage(outcome.message);
  else void vscode.window.showInformationMessage(outcome.message);
}

async function symbolsOf(uri: vscode.Uri): Promise<SymbolLike[] | undefined> {
  try {
    return await vscode.commands.executeCommand<SymbolLike[]>("vscode.executeDocumentSymbolProvider", uri);
  } catch {
    return undefined; // no symbol provider for C installed: fall back to the text scanner
  }
}

async function runAction(action: Action): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "c") {
    void vscode.window.showWarningMessage(`cra ${action}: open a C file and put the cursor in a function first.`);
    return;
  }
  if (!client || !client.isRunning()) {
    void vscode.window.showErrorMessage(`cra ${action}: the cra language server is not running.`);
    return;
  }
  const document = editor.document;
  const position = editor.selection.active;
  const symbol = functionAtCursor(await symbolsOf(document.uri), document.getText(), position);
  if (!symbol && needsFunction(action)) {
    void vscode.window.showWarningMessage(`cra ${action}: no C function at the cursor.`);
    return;
  }
  const params = executeCommandParams(action, commandArgument(document.uri.toString(), symbol, document.version));
  const running = client;
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `cra ${action} ${symbol ?? ""}`.trim(), cancellable: true },
    async (_progress, token) => {
      try {
        // The token makes vscode-languageclient send $/cancelRequest when the user presses Cancel.
        const result: unknown = await running.sendRequest(ExecuteCommandRequest.type, params, token);
        show(describeResult(action, symbol, result));
      } catch (error) {
        show(describeFailure(action, symbol, token.isCancellationRequested ? { code: -32800 } : error));
      }
    },
  );
}

async function trustWorkspace(): Promise<void> {
  const choice = await vscode.window.showWarningMessage(
    "Trust this workspace? cra will then run the build and test commands named by its cra.toml and build files.",
    { modal: true },
    "Trust",
  );
  if (choice !== "Trust") return;
  // Changing the setting sends didChangeConfiguration (see onDidChangeConfiguration below).
  await vscode.workspace.getConfiguration(SECTION).update("trust", true, vscode.ConfigurationTarget.Workspace);
}

async function onSettingsChanged(output: vscode.OutputChannel): Promise<void> {
  let next: CraSettings;
  try {
    next = loadSettings();
  } catch (error) {
    void vscode.window.showErrorMessage(`cra: ${(error as Error).message}`);
    return;
  }
  const previous = current;
  current = next;
  if (!client || (previous && needsRestart(previous, next))) {
    await client?.stop();
    await startClient(next, output);
    return;
  }
  await client.sendNotification(DidChangeConfigurationNotification.type, {
    settings: didChangeConfigurationSettings(next),
  });
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("cra");
  context.subscriptions.push(output);
  for (const action of ACTIONS) {
    context.subscriptions.push(vscode.commands.registerCommand(paletteCommand(action), () => runAction(action)));
  }
  context.subscriptions.push(
    vscode.commands.registerCommand("cra.trustWorkspace", trustWorkspace),
    vscode.commands.registerCommand("cra.restartServer", async () => {
      await client?.stop();
      client = undefined;
      await onSettingsChanged(output);
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(SECTION)) void onSettingsChanged(output);
    }),
  );
  try {
    current = loadSettings();
  } catch (error) {
    void vscode.window.showErrorMessage(`cra: ${(error as Error).message}`);
    return;
  }
  await startClient(current, output);
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
