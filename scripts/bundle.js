// Joins the ES modules tsc emitted into two: `cancelkit.js`, the modules of
// the entry points that import no Node module (so they stay usable in
// browsers, Deno and Bun), and `cancelkit-node.js`, the rest (`signals`,
// `http`), which imports what it needs from the first. Each entry point
// becomes a one-line re-export of its bundle. Run by build.js on tsc's
// output directory; the declarations (.d.ts) stay one per source file.
//
// Why: on Node 20 the ES module loader reads every imported file through a
// `fs/promises` FileHandle, an EventEmitter. Past about a dozen of them the
// property sites in `EventEmitter.init` turn megamorphic, and that code is
// inlined into the constructors Node's HTTP server runs for every request,
// so a process that imported `cancelkit/http` as 14 files (17 with
// `cancelkit/signals`) paid for it on every request, in code that is not
// ours (docs/http.md, "what it costs while serving"). Now an entry point
// reads two or three files.
//
// What it does is simple because the input is ours: tsc's output of
// `src/`, without cycles, `export *`, default exports or namespace imports
// of our own modules. Modules are concatenated in dependency order into one
// scope, so every top-level name must be unique across the package, and no
// module may use a global (a name it does not declare) that another module
// declares at top level: the build fails, naming the files, when either is
// not so. Our imports and exports are removed (an import under another name
// becomes a `const` alias); imports of Node's modules are merged at the top.
// A source map is composed from tsc's, so stack traces still name `src/`.
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

export const BUNDLE = "cancelkit.js";
export const NODE_BUNDLE = "cancelkit-node.js";

/**
 * Bundles the modules reachable from `entries` (paths relative to `dir`)
 * into `dir/cancelkit.js` (the modules of the entries that import no Node
 * module, so those stay usable outside Node) and `dir/cancelkit-node.js`
 * (the rest, importing what it needs from the first), rewrites each entry as
 * a re-export of its bundle, and removes the other modules' .js and .js.map
 * files.
 */
export function bundle(dir, entries) {
  const modules = new Map(); // absolute path → parsed module
  const load = (file) => {
    if (modules.has(file)) return;
    const mod = parse(file, relative(dir, file));
    modules.set(file, mod);
    for (const dep of mod.deps) load(dep);
  };
  const entryFiles = entries.map((entry) => resolve(dir, entry));
  for (const file of entryFiles) load(file);
  const order = dependencyOrder(entryFiles, modules);

  // Where each exported name of a module is declared, following re-exports
  // and exported imports.
  const resolveExport = (file, name, trail = []) => {
    const mod = modules.get(file);
    if (trail.length > modules.size) fail(`re-exports of ${name} loop through ${trail.join(", ")}`);
    const reexport = mod.reexports.get(name);
    if (reexport !== undefined) return resolveExport(reexport.from, reexport.imported, [...trail, mod.name]);
    const local = mod.exports.get(name);
    if (local === undefined) fail(`${mod.name} has no export ${name}${trail.length ? ` (via ${trail.join(", ")})` : ""}`);
    const imported = mod.imports.find((i) => i.local === local);
    if (imported !== undefined) return resolveExport(imported.from, imported.imported, [...trail, mod.name]);
    return { mod, local };
  };

  // Two bundles: the modules of the entries that reach no Node module, then the rest.
  const closure = (file, into = new Set()) => {
    if (!into.has(file)) {
      into.add(file);
      for (const dep of modules.get(file).deps) closure(dep, into);
    }
    return into;
  };
  const neutral = new Set();
  const neutralEntries = new Set(entryFiles.filter((file) => ![...closure(file)].some((f) => modules.get(f).builtins.length > 0)));
  for (const file of neutralEntries) closure(file, neutral);
  const chunks = [
    { name: BUNDLE, about: "the platform-neutral modules (no Node import)", mods: order.filter((m) => neutral.has(m.file)) },
    { name: NODE_BUNDLE, about: `the Node modules (importing the others from ${BUNDLE})`, mods: order.filter((m) => !neutral.has(m.file)) },
  ].filter((chunk) => chunk.mods.length > 0);
  const chunkOf = new Map();
  chunks.forEach((chunk, c) => {
    for (const mod of chunk.mods) chunkOf.set(mod, c);
    chunk.builtins = new Map(); // specifier → { defaults, namespaces, named: Map(local → imported) }
    chunk.needs = new Set(); // names it imports from the first bundle
    chunk.exports = new Map(); // exported name → local name
  });

  // Top-level names: one owner each across the package, Node's imports included.
  const owner = new Map(); // name → who declares it
  const claim = (name, who) => {
    const previous = owner.get(name);
    if (previous !== undefined && previous !== who) fail(`top-level name ${name} is declared by both ${previous} and ${who}: rename one of them`);
    owner.set(name, who);
  };
  for (const mod of order) {
    const { builtins } = chunks[chunkOf.get(mod)];
    for (const name of mod.declared) claim(name, mod.name);
    for (const b of mod.builtins) {
      const entry = builtins.get(b.specifier) ?? { defaults: new Set(), namespaces: new Set(), named: new Map() };
      builtins.set(b.specifier, entry);
      if (b.kind === "default") entry.defaults.add(b.local);
      else if (b.kind === "namespace") entry.namespaces.add(b.local);
      else if (entry.named.has(b.local) && entry.named.get(b.local) !== b.imported) fail(`${b.local} is imported from ${b.specifier} under two names`);
      else entry.named.set(b.local, b.imported);
      claim(b.local, `${b.specifier} ${b.kind === "named" ? b.imported : b.kind}`);
    }
  }
  // Imports of our own modules: the same name needs nothing, another name a
  // `const` alias, emitted once, by the first module that needs it. A
  // binding of the first bundle used in the second is imported from it.
  const aliasChunk = new Map(); // alias → the chunk that declares it
  for (const mod of order) {
    const c = chunkOf.get(mod);
    const use = (name, home) => {
      if (home !== c) chunks[c].needs.add(name);
    };
    mod.aliases = [];
    for (const i of mod.imports) {
      const target = resolveExport(i.from, i.imported);
      if (target.local === i.local) use(i.local, chunkOf.get(target.mod));
      else if (aliasChunk.has(i.local)) use(i.local, aliasChunk.get(i.local));
      else {
        claim(i.local, `an alias of ${target.local} (${target.mod.name})`);
        aliasChunk.set(i.local, c);
        mod.aliases.push(`const ${i.local} = ${target.local};`);
        use(target.local, chunkOf.get(target.mod));
      }
    }
  }
  // No module may use a global (a free name) that another module declares at
  // top level: in one scope it would find that declaration instead.
  const program = ts.createProgram([...modules.keys()], { allowJs: true, noEmit: true, target: ts.ScriptTarget.ESNext, types: [] });
  const checker = program.getTypeChecker();
  for (const mod of order) {
    for (const name of freeNames(checker, program.getSourceFile(mod.file))) {
      if (owner.has(name)) fail(`${mod.name} uses the global ${name}, which ${owner.get(name)} declares at top level: rename one of them`);
    }
  }

  // Each entry re-exports from its own bundle, which exports what its
  // entries and the later bundle need.
  const entryExports = entryFiles.map((file) => [...exportNames(modules.get(file))].map((name) => ({ name, ...resolveExport(file, name) })));
  const entryChunk = entryFiles.map((file) => chunkOf.get(modules.get(file)));
  const addExport = (chunk, name, local) => {
    const previous = chunk.exports.get(name);
    if (previous !== undefined && previous !== local) fail(`two entry points export ${name} for different bindings (${previous}, ${local})`);
    chunk.exports.set(name, local);
  };
  entryFiles.forEach((_, i) => {
    const c = entryChunk[i];
    for (const { name, local, mod } of entryExports[i]) {
      addExport(chunks[c], name, local);
      if (chunkOf.get(mod) !== c) chunks[c].needs.add(local);
    }
  });
  for (const chunk of chunks.slice(1)) for (const name of chunk.needs) addExport(chunks[0], name, name);

  const byName = (a, b) => (a < b ? -1 : 1);
  chunks.forEach((chunk, c) => {
    const out = new OutputMap();
    out.line(`// cancelkit, ${chunk.about}, as one module: built from tsc's output of src/ by scripts/bundle.js.`);
    if (c > 0 && chunk.needs.size > 0) out.line(`import { ${[...chunk.needs].sort(byName).join(", ")} } from "./${BUNDLE}";`);
    for (const [specifier, { defaults, namespaces, named }] of [...chunk.builtins].sort(([a], [b]) => byName(a, b))) {
      for (const ns of namespaces) out.line(`import * as ${ns} from "${specifier}";`);
      const parts = [];
      const list = [...named].map(([local, imported]) => (local === imported ? local : `${imported} as ${local}`));
      if (defaults.size > 1) fail(`${specifier} is imported by default under two names: ${[...defaults].join(", ")}`);
      if (defaults.size === 1) parts.push([...defaults][0]);
      if (list.length > 0) parts.push(`{ ${list.join(", ")} }`);
      if (parts.length > 0) out.line(`import ${parts.join(", ")} from "${specifier}";`);
    }
    for (const mod of chunk.mods) out.module(mod, dir);
    const exportList = [...chunk.exports].sort(([a], [b]) => byName(a, b)).map(([name, local]) => (name === local ? name : `${local} as ${name}`));
    out.line(`export { ${exportList.join(", ")} };`);
    out.line(`//# sourceMappingURL=${chunk.name}.map`);
    writeFileSync(join(dir, chunk.name), out.text());
    writeFileSync(join(dir, `${chunk.name}.map`), JSON.stringify(out.sourceMap(chunk.name)));
  });

  // Entries become re-exports; the other modules' code lives in the bundles now.
  const entrySet = new Set(entryFiles);
  for (const mod of order) {
    rmSync(`${mod.file}.map`, { force: true });
    if (!entrySet.has(mod.file)) rmSync(mod.file);
  }
  entryFiles.forEach((file, i) => {
    const chunk = chunks[entryChunk[i]].name;
    const names = entryExports[i].map((e) => e.name).sort(byName);
    let target = relative(dirname(file), join(dir, chunk));
    if (!target.startsWith(".")) target = `./${target}`;
    const what = entries[i] === "index.js" ? "cancelkit" : `cancelkit/${dirname(entries[i])}`;
    writeFileSync(file, `// ${what}: its code is in ${chunk} (scripts/bundle.js).\nexport { ${names.join(", ")} } from "${target}";\n`);
  });
  const outputs = new Set(chunks.map((chunk) => chunk.name));
  for (const stale of readdirSync(dir, { recursive: true })) {
    if (String(stale).endsWith(".js") && !entrySet.has(join(dir, stale)) && !outputs.has(String(stale))) fail(`${stale} is not reachable from an entry point`);
  }
}

function fail(message) {
  throw new Error(`bundle: ${message}`);
}

/** One module of tsc's output: what it imports, declares and exports, and the spans to cut. */
function parse(file, name) {
  const text = readFileSync(file, "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const mod = { file, name, text, source, deps: [], imports: [], builtins: [], exports: new Map(), reexports: new Map(), declared: new Set(), cuts: [], keywords: [] };
  const relativeTarget = (specifier) => (specifier.startsWith(".") ? resolve(dirname(file), specifier) : null);
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      mod.cuts.push(statement);
      const specifier = statement.moduleSpecifier.text;
      const from = relativeTarget(specifier);
      const clause = statement.importClause;
      if (from !== null) {
        mod.deps.push(from);
        if (clause?.name !== undefined || (clause?.namedBindings !== undefined && !ts.isNamedImports(clause.namedBindings))) fail(`${name}: only named imports of our own modules are supported`);
        for (const element of clause?.namedBindings?.elements ?? []) {
          mod.imports.push({ local: element.name.text, imported: (element.propertyName ?? element.name).text, from });
        }
      } else if (clause !== undefined) {
        if (clause.name !== undefined) mod.builtins.push({ specifier, kind: "default", local: clause.name.text });
        const bindings = clause.namedBindings;
        if (bindings !== undefined && ts.isNamespaceImport(bindings)) mod.builtins.push({ specifier, kind: "namespace", local: bindings.name.text });
        else for (const element of bindings?.elements ?? []) mod.builtins.push({ specifier, kind: "named", local: element.name.text, imported: (element.propertyName ?? element.name).text });
      } else fail(`${name}: a side-effect import of ${specifier}`);
    } else if (ts.isExportDeclaration(statement)) {
      mod.cuts.push(statement);
      if (statement.exportClause === undefined || !ts.isNamedExports(statement.exportClause)) fail(`${name}: export * is not supported`);
      const from = statement.moduleSpecifier === undefined ? null : relativeTarget(statement.moduleSpecifier.text);
      if (statement.moduleSpecifier !== undefined && from === null) fail(`${name}: re-exports a module that is not ours`);
      if (from !== null) mod.deps.push(from);
      for (const element of statement.exportClause.elements) {
        const local = (element.propertyName ?? element.name).text;
        if (from !== null) mod.reexports.set(element.name.text, { from, imported: local });
        else mod.exports.set(element.name.text, local);
      }
    } else if (ts.isExportAssignment(statement)) {
      fail(`${name}: default exports are not supported`);
    } else {
      const names = declaredNames(statement);
      for (const n of names) mod.declared.add(n);
      const modifiers = ts.canHaveModifiers(statement) ? (ts.getModifiers(statement) ?? []) : [];
      const keyword = modifiers.find((m) => m.kind === ts.SyntaxKind.ExportKeyword);
      if (keyword !== undefined) {
        if (modifiers.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)) fail(`${name}: default exports are not supported`);
        mod.keywords.push(keyword);
        for (const n of names) mod.exports.set(n, n);
      }
    }
  }
  return mod;
}

/** The names a top-level statement declares. */
function declaredNames(statement) {
  if (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) return statement.name ? [statement.name.text] : [];
  if (ts.isVariableStatement(statement)) {
    const names = [];
    const walk = (binding) => {
      if (ts.isIdentifier(binding)) names.push(binding.text);
      else for (const element of binding.elements) if (!ts.isOmittedExpression(element)) walk(element.name);
    };
    for (const declaration of statement.declarationList.declarations) walk(declaration.name);
    return names;
  }
  if (ts.isEnumDeclaration(statement) || ts.isModuleDeclaration(statement)) fail(`${statement.getSourceFile().fileName}: enums and namespaces are not supported`);
  return [];
}

/**
 * The names `source` uses without declaring them anywhere in itself: the
 * globals it reaches (`process`, `setTimeout`, ...). Property names are not
 * names: `a.b`, `{ b: 1 }` and class members are skipped.
 */
function freeNames(checker, source) {
  const names = new Set();
  const visit = (n) => {
    if (ts.isIdentifier(n) && !isPropertyName(n)) {
      // `{ name }` is a property and a use of `name`: the use is what counts.
      const symbol = ts.isShorthandPropertyAssignment(n.parent) ? checker.getShorthandAssignmentValueSymbol(n.parent) : checker.getSymbolAtLocation(n);
      const declarations = symbol?.declarations ?? [];
      if (!declarations.some((d) => d.getSourceFile() === source)) names.add(n.text);
    }
    ts.forEachChild(n, visit);
  };
  visit(source);
  return names;
}

function isPropertyName(n) {
  const parent = n.parent;
  if (ts.isPropertyAccessExpression(parent)) return parent.name === n;
  if (ts.isPropertyAssignment(parent) || ts.isMethodDeclaration(parent) || ts.isPropertyDeclaration(parent) || ts.isGetAccessor(parent) || ts.isSetAccessor(parent)) return parent.name === n;
  if (ts.isBindingElement(parent)) return parent.propertyName === n;
  return ts.isImportSpecifier(parent) || ts.isExportSpecifier(parent) || ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent);
}

/** The exported names of an entry module, its re-exports included. */
function exportNames(mod) {
  return new Set([...mod.exports.keys(), ...mod.reexports.keys()]);
}

/** Modules in the order they must run: each after the modules it imports. */
function dependencyOrder(entryFiles, modules) {
  const order = [];
  const state = new Map(); // file → "visiting" | "done"
  const visit = (file, path) => {
    const seen = state.get(file);
    if (seen === "done") return;
    if (seen === "visiting") fail(`import cycle: ${[...path, file].map((f) => modules.get(f).name).join(" → ")}`);
    state.set(file, "visiting");
    for (const dep of modules.get(file).deps) visit(dep, [...path, file]);
    state.set(file, "done");
    order.push(modules.get(file));
  };
  for (const file of entryFiles) visit(file, []);
  return order;
}

/** The bundle's text and its source map, composed from tsc's per-module maps. */
class OutputMap {
  #lines = [];
  #segments = []; // per output line: [column, sourceIndex, line, column][]
  #sources = [];

  line(text) {
    this.#lines.push(text);
    this.#segments.push([]);
  }

  /** Appends `mod` without its imports, exports and `export` keywords, mapping each line to src/. */
  module(mod, dir) {
    const { source, text } = mod;
    const map = JSON.parse(readFileSync(`${mod.file}.map`, "utf8"));
    const sourceIndex = map.sources.map((s) => {
      const path = relative(dir, resolve(dirname(mod.file), map.sourceRoot ?? "", s));
      let i = this.#sources.indexOf(path);
      if (i < 0) i = this.#sources.push(path) - 1;
      return i;
    });
    const decoded = decodeMappings(map.mappings);
    const lines = text.split("\n");
    if (lines[lines.length - 1].startsWith("//# sourceMappingURL=")) lines.pop();
    else if (lines[lines.length - 1] === "" && lines[lines.length - 2]?.startsWith("//# sourceMappingURL=")) lines.splice(-2);
    const cut = new Set();
    const replacement = new Map(); // first line of a cut import → the aliases it becomes
    for (const statement of mod.cuts) {
      const first = source.getLineAndCharacterOfPosition(statement.getStart()).line;
      const last = source.getLineAndCharacterOfPosition(statement.end).line;
      for (let l = first; l <= last; l++) cut.add(l);
      if (lines[last].slice(source.getLineAndCharacterOfPosition(statement.end).character).trim() !== "") fail(`${mod.name}:${last + 1}: code after an import or export on the same line`);
    }
    if (mod.aliases.length > 0) replacement.set(Math.min(...mod.cuts.filter((s) => ts.isImportDeclaration(s)).map((s) => source.getLineAndCharacterOfPosition(s.getStart()).line)), mod.aliases);
    const keywordAt = new Map(); // line → column of a removed `export `
    for (const keyword of mod.keywords) {
      const { line, character } = source.getLineAndCharacterOfPosition(keyword.getStart());
      if (text.slice(keyword.getStart(), keyword.end + 1) !== "export " || keywordAt.has(line)) fail(`${mod.name}:${line + 1}: unexpected export modifier layout`);
      keywordAt.set(line, character);
    }
    // A module of re-exports only (an index) leaves nothing but comments.
    if (mod.aliases.length === 0 && source.statements.every((s) => mod.cuts.includes(s))) return;
    this.line(`// src/${mod.name.replace(/\.js$/, ".ts")}`); // tsc's rootDir is src/
    for (let l = 0; l < lines.length; l++) {
      if (replacement.has(l)) for (const alias of replacement.get(l)) this.line(alias);
      if (cut.has(l)) continue;
      const at = keywordAt.get(l);
      const segments = (decoded[l] ?? []).map(([column, s, line, col]) => [at !== undefined && column >= at ? Math.max(at, column - 7) : column, sourceIndex[s], line, col]);
      this.#lines.push(at === undefined ? lines[l] : lines[l].slice(0, at) + lines[l].slice(at + 7));
      this.#segments.push(segments.filter((seg) => seg[1] !== undefined));
    }
  }

  text() {
    return `${this.#lines.join("\n")}\n`;
  }

  sourceMap(file) {
    return { version: 3, file, sources: this.#sources, names: [], mappings: encodeMappings(this.#segments) };
  }
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Source map v3 mappings → per generated line, absolute [column, source, line, column] segments. */
function decodeMappings(mappings) {
  const lines = [];
  let source = 0;
  let line = 0;
  let column = 0;
  for (const text of mappings.split(";")) {
    const segments = [];
    let generated = 0;
    for (const segment of text.split(",")) {
      if (segment === "") continue;
      const fields = [];
      let value = 0;
      let shift = 0;
      for (const char of segment) {
        const digit = BASE64.indexOf(char);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      generated += fields[0];
      if (fields.length >= 4) {
        source += fields[1];
        line += fields[2];
        column += fields[3];
        segments.push([generated, source, line, column]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

function encodeMappings(lines) {
  const vlq = (n) => {
    let value = n < 0 ? (-n << 1) | 1 : n << 1;
    let out = "";
    do {
      let digit = value & 31;
      value >>>= 5;
      if (value > 0) digit |= 32;
      out += BASE64[digit];
    } while (value > 0);
    return out;
  };
  let source = 0;
  let line = 0;
  let column = 0;
  return lines
    .map((segments) => {
      let generated = 0;
      return segments
        .map(([gen, s, l, c]) => {
          const text = vlq(gen - generated) + vlq(s - source) + vlq(l - line) + vlq(c - column);
          generated = gen;
          source = s;
          line = l;
          column = c;
          return text;
        })
        .join(",");
    })
    .join(";");
}
