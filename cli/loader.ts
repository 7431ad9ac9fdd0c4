// Model-file loading: type-check with ts-morph, run with tsx (resolving `kiln` to this package), locate errors in the file.
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Project, ts } from 'ts-morph';
import { register as registerTsx } from 'tsx/esm/api';

/** The folder holding kiln's package.json (this file runs from dist/cli/ or cli/). */
export const packageRoot = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(dir: string): string {
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`kiln: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

/**
 * The node_modules/@types folder holding @types/node, looked up from dir as Node resolves packages: kiln installed in
 * a project has its dependencies hoisted beside it, not in its own node_modules.
 */
function findNodeTypes(dir: string): string | undefined {
  for (;;) {
    const types = path.join(dir, 'node_modules', '@types');
    if (existsSync(path.join(types, 'node', 'package.json'))) return types;
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** How a user file is shown in messages: relative to the working directory. */
export function displayPath(file: string): string {
  return path.relative(process.cwd(), file) || file;
}

/**
 * Type-checks a model file (absolute path) and returns one `file:line:col message` line per error.
 * `kiln` maps to the built declarations by `paths`, so files outside this repository resolve too.
 */
export function typeCheck(file: string): string[] {
  const dist = path.join(packageRoot, 'dist');
  const nodeTypes = findNodeTypes(packageRoot) ?? findNodeTypes(path.dirname(file));
  const project = new Project({
    skipAddingFilesFromTsConfig: true,
    compilerOptions: {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts'],
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      types: nodeTypes ? ['node'] : [],
      typeRoots: nodeTypes ? [nodeTypes] : [],
      paths: { kiln: [path.join(dist, 'frontend', 'index.d.ts')], 'kiln/compiler': [path.join(dist, 'compiler.d.ts')] },
    },
  });
  // ts-morph parses files with no module format, which TS takes for CommonJS; the model file runs as an ES module
  // (see installHooks), so say so before its imports are resolved
  const model = project.addSourceFileAtPath(file);
  (model.compilerNode as { impliedNodeFormat?: ts.ResolutionMode }).impliedNodeFormat = ts.ModuleKind.ESNext;
  return project.getPreEmitDiagnostics()
    .filter((d) => d.getCategory() === ts.DiagnosticCategory.Error)
    .map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.compilerObject.messageText, ' ');
      const sf = d.getSourceFile();
      if (!sf) return `kiln: ${text}`;
      const { line, column } = sf.getLineAndColumnAtPos(d.getStart() ?? 0);
      return `${displayPath(sf.getFilePath())}:${line}:${column} ${text}`;
    });
}

let hooksInstalled = false;

/**
 * Installs tsx and one resolve hook (once per process): `kiln` and `kiln/compiler` map to the modules next to this
 * file, so the model shares this process's frontend (one Model class, one trace state); user `.ts` files load as ES modules.
 * tsx is registered globally, not with tsImport: tsImport's namespace query would give the model its own copy of kiln.
 */
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  registerTsx();
  const aliases = {
    kiln: new URL('../frontend/index.js', import.meta.url).href,
    'kiln/compiler': new URL('../compiler.js', import.meta.url).href,
  };
  const hook = `const aliases = ${JSON.stringify(aliases)};
export async function resolve(specifier, context, next) {
  if (Object.hasOwn(aliases, specifier)) return { url: aliases[specifier], format: 'module', shortCircuit: true };
  const r = await next(specifier, context);
  const u = new URL(r.url);
  return u.protocol === 'file:' && u.pathname.endsWith('.ts') && !u.pathname.includes('/node_modules/') ? { ...r, format: 'module' } : r;
}`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
}

/** Runs a model file (absolute path) and returns its module namespace. */
export async function importModelFile(file: string): Promise<Record<string, unknown>> {
  installHooks();
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/** `file:line:col` of the first stack frame of `err` inside `file` (tsx's source maps give .ts positions). */
export function errorLocation(err: unknown, file: string): string | undefined {
  const stack = err instanceof Error ? err.stack ?? '' : '';
  const names = [file, pathToFileURL(file).href];
  for (const frame of stack.split('\n')) {
    if (!frame.trimStart().startsWith('at ')) continue;
    for (const name of names) {
      const i = frame.indexOf(`${name}:`);
      const m = i < 0 ? null : /^:(\d+):(\d+)/.exec(frame.slice(i + name.length));
      if (m) return `${displayPath(file)}:${m[1]}:${m[2]}`;
    }
  }
  return undefined;
}
