// Bundles the extension (vscode-languageclient inlined, `vscode` external) and transpiles the pure modules
// in src/lib/ one by one so node's test runner can import them without VS Code.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

await build({
  entryPoints: ["src/extension.ts"],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node18",
  external: ["vscode"],
  outfile: "out/extension.js",
  sourcemap: false,
  logLevel: "warning",
});

await build({
  entryPoints: readdirSync("src/lib").filter((f) => f.endsWith(".ts")).map((f) => `src/lib/${f}`),
  bundle: false,
  platform: "node",
  format: "cjs",
  target: "node18",
  outdir: "out/lib",
  logLevel: "warning",
});
