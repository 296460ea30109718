// A stand-in for the `vscode` module, enough for the bundled extension and vscode-languageclient to run under
// plain node. It records what the extension does (commands, messages, progress) in `stub.state`; members it
// does not model explicitly resolve to an inert value so unrelated client features can initialise.
"use strict";

function inert() {
  const target = function () {};
  return new Proxy(target, {
    get(_t, prop) {
      if (prop === Symbol.iterator) return function* () {};
      if (prop === Symbol.toPrimitive) return () => "";
      if (prop === "then") return undefined; // not a thenable
      if (prop === "prototype") return {};
      return inert();
    },
    apply: () => inert(),
    construct: () => inert(),
  });
}

class Disposable {
  constructor(fn) {
    this.fn = fn;
  }
  static from(...items) {
    return new Disposable(() => items.forEach((item) => item && item.dispose && item.dispose()));
  }
  dispose() {
    if (this.fn) this.fn();
    this.fn = undefined;
  }
}

class EventEmitter {
  constructor() {
    this.listeners = new Set();
    this.event = (listener, thisArg) => {
      const bound = thisArg ? listener.bind(thisArg) : listener;
      this.listeners.add(bound);
      return new Disposable(() => this.listeners.delete(bound));
    };
  }
  fire(value) {
    for (const listener of [...this.listeners]) listener(value);
  }
  dispose() {
    this.listeners.clear();
  }
}

class CancellationTokenSource {
  constructor() {
    const emitter = new EventEmitter();
    this.emitter = emitter;
    this.token = { isCancellationRequested: false, onCancellationRequested: emitter.event };
  }
  cancel() {
    if (this.token.isCancellationRequested) return;
    this.token.isCancellationRequested = true;
    this.emitter.fire(undefined);
  }
  dispose() {}
}

class Position {
  constructor(line, character) {
    this.line = line;
    this.character = character;
  }
}
class Range {
  constructor(a, b, c, d) {
    if (typeof a === "number") {
      this.start = new Position(a, b);
      this.end = new Position(c, d);
    } else {
      this.start = a;
      this.end = b;
    }
  }
}
class Uri {
  constructor(scheme, path) {
    this.scheme = scheme;
    this.path = path;
    this.fsPath = path;
  }
  static file(path) {
    return new Uri("file", path);
  }
  static parse(value) {
    const match = /^([a-z]+):\/\/(.*)$/.exec(value);
    return match ? new Uri(match[1], decodeURIComponent(match[2])) : new Uri("file", value);
  }
  toString() {
    return `${this.scheme}://${encodeURI(this.path)}`;
  }
  with() {
    return this;
  }
}
class CancellationError extends Error {
  constructor() {
    super("Canceled");
    this.name = "Canceled";
  }
}
class Plain {
  constructor(...args) {
    this.args = args;
  }
}

// Members not modelled explicitly resolve to an inert value.
function withFallback(object) {
  return new Proxy(object, {
    get(target, prop, receiver) {
      if (prop in target) return Reflect.get(target, prop, receiver);
      if (typeof prop === "symbol" || prop === "then" || prop === "__esModule") return undefined;
      return inert();
    },
  });
}

function createStub(initialSettings) {
  const state = {
    settings: { ...initialSettings },
    commands: new Map(),
    registrations: [],
    messages: [],
    progress: [],
    activeTextEditor: undefined,
    documentSymbols: undefined,
    configurationListeners: new EventEmitter(),
    cancelNextProgress: false,
  };
  const configuration = (section) => ({
    get: (key, fallback) => {
      const full = section ? `${section}.${key}` : key;
      return Object.prototype.hasOwnProperty.call(state.settings, full) ? state.settings[full] : fallback;
    },
    has: (key) => Object.prototype.hasOwnProperty.call(state.settings, section ? `${section}.${key}` : key),
    update: async (key, value) => {
      state.settings[section ? `${section}.${key}` : key] = value;
      state.configurationListeners.fire({ affectsConfiguration: (s) => s === "cra" || s.startsWith("cra.") });
    },
    inspect: () => undefined,
  });
  const message = (severity) => async (text, ...rest) => {
    state.messages.push({ severity, text });
    const options = rest[0];
    // Modal confirmations are answered with their first choice, as a user who accepts would.
    return options && typeof options === "object" && options.modal ? rest[1] : undefined;
  };
  const events = () => new EventEmitter().event;
  const explicit = {
    version: "1.90.0",
    Disposable,
    EventEmitter,
    CancellationTokenSource,
    CancellationError,
    Position,
    Range,
    Uri,
    Selection: Range,
    Location: Plain,
    Diagnostic: Plain,
    CodeAction: Plain,
    CodeLens: Plain,
    CompletionItem: Plain,
    DocumentLink: Plain,
    InlayHint: Plain,
    SymbolInformation: Plain,
    CallHierarchyItem: Plain,
    TypeHierarchyItem: Plain,
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
    commands: {
      registerCommand(id, handler) {
        if (state.commands.has(id)) {
          // VS Code refuses a second registration of an id; so does this stand-in.
          throw new Error(`command '${id}' already exists`);
        }
        state.commands.set(id, handler);
        state.registrations.push(id);
        return new Disposable(() => state.commands.delete(id));
      },
      async executeCommand(id, ...args) {
        if (id === "vscode.executeDocumentSymbolProvider") return state.documentSymbols;
        const handler = state.commands.get(id);
        if (!handler) throw new Error(`command '${id}' not found`);
        return handler(...args);
      },
      getCommands: async () => [...state.commands.keys()],
    },
    window: {
      get activeTextEditor() {
        return state.activeTextEditor;
      },
      visibleTextEditors: [],
      showInformationMessage: message("info"),
      showWarningMessage: message("warning"),
      showErrorMessage: message("error"),
      createOutputChannel: (name) => ({
        name,
        lines: [],
        append() {},
        appendLine(line) {
          this.lines.push(line);
        },
        replace() {},
        clear() {},
        show() {},
        hide() {},
        dispose() {},
      }),
      async withProgress(options, task) {
        const source = new CancellationTokenSource();
        const entry = { options, reports: [], source };
        state.progress.push(entry);
        const reporter = { report: (value) => entry.reports.push(value) };
        return task(reporter, source.token);
      },
      onDidChangeActiveTextEditor: events(),
      onDidChangeVisibleTextEditors: events(),
      onDidChangeWindowState: events(),
      state: { focused: true },
    },
    workspace: {
      workspaceFolders: undefined,
      textDocuments: [],
      getConfiguration: configuration,
      onDidChangeConfiguration: (listener) => state.configurationListeners.event(listener),
      onDidOpenTextDocument: events(),
      onDidCloseTextDocument: events(),
      onDidChangeTextDocument: events(),
      onDidSaveTextDocument: events(),
      onWillSaveTextDocument: events(),
      onDidChangeWorkspaceFolders: events(),
      onDidCreateFiles: events(),
      onDidRenameFiles: events(),
      onDidDeleteFiles: events(),
      onWillCreateFiles: events(),
      onWillRenameFiles: events(),
      onWillDeleteFiles: events(),
      onDidOpenNotebookDocument: events(),
      onDidChangeNotebookDocument: events(),
      onDidSaveNotebookDocument: events(),
      onDidCloseNotebookDocument: events(),
      notebookDocuments: [],
      createFileSystemWatcher: () => ({ onDidCreate: events(), onDidChange: events(), onDidDelete: events(), dispose() {} }),
    },
    languages: {
      match: (selector, document) => (document && document.languageId === "c" ? 10 : 0),
    },
    env: { appName: "stub", language: "en", machineId: "stub", sessionId: "stub", uiKind: 1 },
  };
  for (const namespace of ["commands", "window", "workspace", "languages", "env"]) {
    explicit[namespace] = withFallback(explicit[namespace]);
  }
  const api = withFallback(explicit);
  return { api, state };
}

module.exports = { createStub, CancellationTokenSource };
