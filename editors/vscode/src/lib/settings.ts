// Settings of section `cra` -> the server's initializationOptions / didChangeConfiguration payload.
// Pure module: the caller passes a getter so this works with any settings source.

export interface CraSettings {
  trust: boolean;
  configPath: string;
  serverCommand: string[];
  models: { coding: string; router: string };
}

/** What the server receives: `{"trust": bool, "config": {...}}` (plus `configFile` when cra.configPath is set). */
export interface ServerOptions {
  trust: boolean;
  config: { models?: { coding?: { model: string }; router?: { model: string } } };
  configFile?: string;
}

export const DEFAULT_SERVER_COMMAND: readonly string[] = ["cra", "lsp"];

export class SettingsError extends Error {
  constructor(key: string, problem: string) {
    super(`setting "cra.${key}" ${problem}`);
    this.name = "SettingsError";
  }
}

/** Reads one key (relative to section `cra`), returning `undefined` when unset. */
export type SettingGetter = (key: string) => unknown;

function readString(get: SettingGetter, key: string): string {
  const value = get(key);
  if (value === undefined || value === null) {
    return "";
  }
  if (typeof value !== "string") {
    throw new SettingsError(key, `must be a string, got ${JSON.stringify(value)}`);
  }
  return value.trim();
}

function readBoolean(get: SettingGetter, key: string): boolean {
  const value = get(key);
  if (value === undefined || value === null) {
    return false;
  }
  if (typeof value !== "boolean") {
    throw new SettingsError(key, `must be true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

function readArgv(get: SettingGetter, key: string): string[] {
  const value = get(key);
  if (value === undefined || value === null) {
    return [...DEFAULT_SERVER_COMMAND];
  }
  // A single string is a common mistake; reject it rather than guess how to split it.
  if (!Array.isArray(value) || value.some((part) => typeof part !== "string")) {
    throw new SettingsError(key, `must be a list of strings (program first), got ${JSON.stringify(value)}`);
  }
  if (value.length === 0 || (value[0] as string).trim() === "") {
    throw new SettingsError(key, "must name the server program as its first element");
  }
  return [...(value as string[])];
}

export function readSettings(get: SettingGetter): CraSettings {
  return {
    trust: readBoolean(get, "trust"),
    configPath: readString(get, "configPath"),
    serverCommand: readArgv(get, "serverCommand"),
    models: { coding: readString(get, "models.coding"), router: readString(get, "models.router") },
  };
}

/** initializationOptions for the server; empty model settings are left out so the config file decides. */
export function serverOptions(settings: CraSettings): ServerOptions {
  const models: NonNullable<ServerOptions["config"]["models"]> = {};
  if (settings.models.coding) {
    models.coding = { model: settings.models.coding };
  }
  if (settings.models.router) {
    models.router = { model: settings.models.router };
  }
  const options: ServerOptions = { trust: settings.trust, config: {} };
  if (Object.keys(models).length > 0) {
    options.config.models = models;
  }
  if (settings.configPath) {
    options.configFile = settings.configPath;
  }
  return options;
}

/** `settings` of a `workspace/didChangeConfiguration` notification: the same object, under section `cra`. */
export function didChangeConfigurationSettings(settings: CraSettings): { cra: ServerOptions } {
  return { cra: serverOptions(settings) };
}

/** Whether a settings change needs the server process restarted (a new argv) rather than a notification. */
export function needsRestart(before: CraSettings, after: CraSettings): boolean {
  return JSON.stringify(before.serverCommand) !== JSON.stringify(after.serverCommand);
}
