// Finding the C function at the cursor, from editor document symbols or, when no symbol provider answers,
// from the text itself. Pure module: positions are zero-based lines as in LSP and VS Code.

export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}

/** The parts of a DocumentSymbol (tree) or SymbolInformation (flat, with `location`) used here. */
export interface SymbolLike {
  name: string;
  kind: number;
  range?: Range;
  location?: { range: Range };
  children?: SymbolLike[];
}

/** VS Code's `SymbolKind` is zero-based (Function = 11, Method = 5); LSP's is one-based (Function = 12). */
export const VSCODE_FUNCTION_KINDS: readonly number[] = [11, 5];
export const LSP_FUNCTION_KINDS: readonly number[] = [12, 6];

function symbolRange(symbol: SymbolLike): Range | undefined {
  return symbol.range ?? symbol.location?.range;
}

function contains(range: Range, position: Position): boolean {
  const afterStart =
    position.line > range.start.line ||
    (position.line === range.start.line && position.character >= range.start.character);
  const beforeEnd =
    position.line < range.end.line || (position.line === range.end.line && position.character <= range.end.character);
  return afterStart && beforeEnd;
}

function rangeSize(range: Range): number {
  return (range.end.line - range.start.line) * 1_000_000 + (range.end.character - range.start.character);
}

/** Name of the innermost function symbol whose range holds the position, or null. */
export function functionFromSymbols(
  symbols: readonly SymbolLike[] | undefined | null,
  position: Position,
  functionKinds: readonly number[] = VSCODE_FUNCTION_KINDS,
): string | null {
  let best: { name: string; size: number } | null = null;
  const visit = (list: readonly SymbolLike[]): void => {
    for (const symbol of list) {
      const range = symbolRange(symbol);
      if (range && functionKinds.includes(symbol.kind) && contains(range, position)) {
        const size = rangeSize(range);
        if (best === null || size < best.size) {
          best = { name: symbol.name.replace(/\s*\(.*$/s, ""), size };
        }
      }
      if (symbol.children) {
        visit(symbol.children);
      }
    }
  };
  visit(symbols ?? []);
  return best === null ? null : (best as { name: string }).name;
}

export interface CFunction {
  name: string;
  /** First line of the declaration (return type), zero-based. */
  startLine: number;
  /** Line of the closing brace (definition) or semicolon (prototype). */
  endLine: number;
  hasBody: boolean;
}

// Identifiers that are followed by "(" but never name the function being declared.
const NOT_A_NAME = new Set([
  "__attribute__", "__attribute", "__declspec", "__asm__", "__asm", "asm", "sizeof", "_Alignas", "alignas",
  "_Static_assert", "static_assert", "if", "while", "for", "switch", "return", "__typeof__", "typeof",
]);

/**
 * Top-level function definitions and prototypes of a C text. A small scanner, not a parser: it skips comments,
 * string and character literals and preprocessor lines, and treats a top-level `name(...) {` as a definition.
 */
export function scanFunctions(text: string): CFunction[] {
  const found: CFunction[] = [];
  let line = 0;
  let braceDepth = 0;
  let parenDepth = 0;
  let statementStart = -1; // line of the first significant character of the current top-level statement
  let candidate: string | null = null; // last identifier followed by "(" at paren depth 0
  let sawAssignment = false;
  let bodyOf: { name: string; startLine: number } | null = null;
  let atLineStart = true;
  let i = 0;
  const resetStatement = (): void => {
    statementStart = -1;
    candidate = null;
    sawAssignment = false;
  };
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\n") {
      line++;
      atLineStart = true;
      i++;
      continue;
    }
    if (ch === " " || ch === "\t" || ch === "\r" || ch === "\f" || ch === "\v") {
      i++;
      continue;
    }
    if (atLineStart && ch === "#") {
      // Preprocessor directive, with backslash continuations.
      while (i < text.length && text[i] !== "\n") {
        if (text[i] === "\\" && text[i + 1] === "\n") {
          line++;
          i++;
        } else if (text[i] === "\\" && text[i + 1] === "\r" && text[i + 2] === "\n") {
          line++;
          i += 2;
        }
        i++;
      }
      continue;
    }
    atLineStart = false;
    if (ch === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (ch === "/" && text[i + 1] === "*") {
      i += 2;
      while (i < text.length && !(text[i] === "*" && text[i + 1] === "/")) {
        if (text[i] === "\n") line++;
        i++;
      }
      i += 2;
      continue;
    }
    if (ch === '"' || ch === "'") {
      i++;
      while (i < text.length && text[i] !== ch && text[i] !== "\n") {
        i += text[i] === "\\" ? 2 : 1;
      }
      i++;
      continue;
    }
    if (braceDepth === 0 && statementStart < 0) {
      statementStart = line;
    }
    if (/[A-Za-z_]/.test(ch)) {
      let j = i;
      while (j < text.length && /[A-Za-z0-9_]/.test(text[j])) j++;
      const word = text.slice(i, j);
      let k = j;
      while (k < text.length && /\s/.test(text[k])) k++;
      if (braceDepth === 0 && parenDepth === 0 && text[k] === "(" && !NOT_A_NAME.has(word)) {
        candidate = word;
      }
      i = j;
      continue;
    }
    if (braceDepth === 0) {
      if (ch === "(") parenDepth++;
      else if (ch === ")") parenDepth = Math.max(0, parenDepth - 1);
      else if (ch === "=" && parenDepth === 0) sawAssignment = true;
      else if (ch === ";" && parenDepth === 0) {
        if (candidate && !sawAssignment && statementStart >= 0) {
          found.push({ name: candidate, startLine: statementStart, endLine: line, hasBody: false });
        }
        resetStatement();
      } else if (ch === "{") {
        braceDepth = 1;
        bodyOf = candidate && !sawAssignment && statementStart >= 0 ? { name: candidate, startLine: statementStart } : null;
      }
      i++;
      continue;
    }
    if (ch === "{") {
      braceDepth++;
    } else if (ch === "}") {
      braceDepth--;
      if (braceDepth === 0) {
        if (bodyOf) {
          found.push({ name: bodyOf.name, startLine: bodyOf.startLine, endLine: line, hasBody: true });
          resetStatement();
        }
        // A struct/union/enum body ends at its ";", which resets the statement then.
        bodyOf = null;
      }
    }
    i++;
  }
  return found;
}

/** Name of the function whose definition (preferred) or prototype spans the given line, or null. */
export function functionFromText(text: string, line: number): string | null {
  const functions = scanFunctions(text).filter((f) => f.startLine <= line && line <= f.endLine);
  const definition = functions.find((f) => f.hasBody);
  return (definition ?? functions[0])?.name ?? null;
}

/** Symbols first (they come from a real parser when a C extension provides them), then the text scanner. */
export function functionAtCursor(
  symbols: readonly SymbolLike[] | undefined | null,
  text: string,
  position: Position,
  functionKinds: readonly number[] = VSCODE_FUNCTION_KINDS,
): string | null {
  return functionFromSymbols(symbols, position, functionKinds) ?? functionFromText(text, position.line);
}
