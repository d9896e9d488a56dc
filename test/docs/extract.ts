/*
 * Finds the code examples a user reads: the fenced ts/js blocks of README.md
 * and docs/*.md, and the fenced blocks inside the doc comments of src/
 * (typedoc's `@example`s and module guides).
 *
 * A Markdown block may be preceded by a directive, an HTML comment that
 * renders as nothing on GitHub, npm and typedoc:
 *
 *   <!-- doctest: fragment -->          continues an earlier block: the public
 *                                       names it uses are imported for it, and
 *                                       test/docs/globals.d.ts declares the
 *                                       application's own names (db, app, …)
 *   <!-- doctest: run; <step>; … -->    also run it, and check what its prose
 *                                       says (steps: doc-examples.test.ts)
 *
 * A block without one must typecheck as a whole module. Blocks in src/ doc
 * comments are fragments of their module (typedoc shows them beside the
 * declaration) and are run: they assert with console.assert.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

export interface DocBlock {
  /** `README.md`, `docs/shutdown.md`, `src/cancel/cancellation-token.ts`. */
  file: string;
  /** 1-based line of the block's first code line in `file`. */
  line: number;
  /** 1-based ordinal of the block among the file's checked blocks. */
  index: number;
  lang: "ts" | "js";
  code: string;
  fragment: boolean;
  /** `null`: typecheck only. Otherwise the steps to run it with (empty: exit 0). */
  run: string[] | null;
}

const LANGS: Record<string, "ts" | "js"> = { ts: "ts", typescript: "ts", mts: "ts", js: "js", javascript: "js", mjs: "js" };

/** The fenced blocks of `lines` (already stripped of any comment prefix). */
function fences(lines: string[]): Array<{ start: number; lang: string; code: string[]; before: string }> {
  const out: Array<{ start: number; lang: string; code: string[]; before: string }> = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+|~~~+)\s*([\w-]*)/.exec(lines[i]!);
    if (open === null) continue;
    const [, indent, fence, lang] = open;
    const code: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(fence!); j++) code.push(lines[j]!.slice(Math.min(indent!.length, lines[j]!.length - lines[j]!.trimStart().length)));
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === "") k--;
    out.push({ start: i + 1, lang: lang!.toLowerCase(), code, before: k >= 0 ? lines[k]!.trim() : "" });
    i = j;
  }
  return out;
}

function directive(before: string, file: string, line: number): { fragment: boolean; run: string[] | null } {
  const match = /^<!--\s*doctest:\s*(.*?)\s*-->$/.exec(before);
  if (match === null) return { fragment: false, run: null };
  const words = match[1]!.split(";").map((s) => s.trim()).filter(Boolean);
  let fragment = false;
  let run: string[] | null = null;
  for (const word of words) {
    if (word === "fragment") fragment = true;
    else if (word === "run") run = [];
    else if (run !== null) run.push(word);
    else throw new Error(`${file}:${line}: doctest directive '${word}' before 'run' (known: fragment, run; <steps>)`);
  }
  return { fragment, run };
}

export function markdownBlocks(root: string, file: string): DocBlock[] {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  const blocks: DocBlock[] = [];
  for (const f of fences(lines)) {
    const lang = LANGS[f.lang];
    if (lang === undefined) continue;
    blocks.push({ file, line: f.start + 1, index: blocks.length + 1, lang, code: f.code.join("\n"), ...directive(f.before, file, f.start) });
  }
  return blocks;
}

export function sourceBlocks(root: string, file: string): DocBlock[] {
  const text = readFileSync(join(root, file), "utf8");
  const blocks: DocBlock[] = [];
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = text.slice(0, comment.index).split("\n").length;
    const lines = comment[0].split("\n").map((l) => l.replace(/^\s*\/?\*+\/?\s?/, "").replace(/\*\/$/, ""));
    for (const f of fences(lines)) {
      const lang = LANGS[f.lang];
      if (lang === undefined) continue;
      blocks.push({ file, line: firstLine + f.start, index: blocks.length + 1, lang, code: f.code.join("\n"), fragment: true, run: [] });
    }
  }
  return blocks;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Every checked block of the repository, in a stable order. */
export function allBlocks(root: string): DocBlock[] {
  const markdown = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
  const sources = walk(join(root, "src"))
    .filter((f) => f.endsWith(".ts"))
    .map((f) => relative(root, f).split("\\").join("/"))
    .sort();
  return [...markdown.flatMap((f) => markdownBlocks(root, f)), ...sources.flatMap((f) => sourceBlocks(root, f))];
}
