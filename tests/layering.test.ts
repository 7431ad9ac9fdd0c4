// The layers of DESIGN.md's Layout, checked on every import of the sources: lower layers never import higher ones,
// targets never import a sibling target, and only cli/ loads model files (ts-morph, tsx).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ts } from 'ts-morph';
import { describe, expect, it } from 'vitest';
import { ensureBuilt, root } from './built.js';

const SOURCE_DIRS = ['ir', 'frontend', 'passes', 'driver', 'codegen', 'runtime', 'io', 'cli'];
const TARGETS = ['llvm', 'wasm', 'cuda'];

function sourceFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(path.join(root, dir));
  } catch {
    return []; // a layer that does not exist (yet) imports nothing
  }
  return entries.flatMap((f) => {
    const rel = `${dir}/${f}`;
    if (statSync(path.join(root, rel)).isDirectory()) return sourceFiles(rel);
    return /\.m?ts$/.test(f) && !f.endsWith('.d.ts') ? [rel] : [];
  });
}

/** Every import of every source file (static, dynamic, re-export), relative ones as paths from the root without extension. */
function imports(): { file: string; target: string }[] {
  const files = [...SOURCE_DIRS.flatMap(sourceFiles), 'compiler.ts'];
  return files.flatMap((file) => ts.preProcessFile(readFileSync(path.join(root, file), 'utf8'), true, true).importedFiles.map(({ fileName }) => ({
    file,
    target: fileName.startsWith('.') ? path.relative(root, path.resolve(root, path.dirname(file), fileName)).replace(/\.m?js$/, '') : fileName,
  })));
}

const all = imports();
const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
/** The imports of files under `from` (a folder or a predicate) that reach a target the predicate `to` names, as `file -> target`. */
function violations(from: (file: string) => boolean, to: (target: string, file: string) => boolean): string[] {
  return all.filter((i) => from(i.file) && to(i.target, i.file)).map((i) => `${i.file} -> ${i.target}`);
}

describe('layering', () => {
  it('finds the imports it checks', () => {
    // the scan must see the sources' real imports, or every rule below would hold vacuously
    expect(all.length).toBeGreaterThan(200);
    expect(all).toContainEqual({ file: 'cli/loader.ts', target: 'ts-morph' });
    expect(all.some((i) => under(i.file, 'codegen/loop') && under(i.target, 'ir'))).toBe(true);
  });

  it('the loop layer imports no target, driver or cli', () => {
    expect(violations((f) => under(f, 'codegen/loop'), (t) => [...TARGETS.map((x) => `codegen/${x}`), 'driver', 'cli'].some((d) => under(t, d)))).toEqual([]);
  });

  it('a target imports no sibling target', () => {
    expect(violations((f) => TARGETS.some((x) => under(f, `codegen/${x}`)),
      (t, f) => TARGETS.some((x) => under(t, `codegen/${x}`) && !under(f, `codegen/${x}`)))).toEqual([]);
  });

  it('codegen/ outside the targets imports no target', () => {
    expect(violations((f) => under(f, 'codegen') && !TARGETS.some((x) => under(f, `codegen/${x}`)),
      (t) => TARGETS.some((x) => under(t, `codegen/${x}`)))).toEqual([]);
  });

  it('ir/ and passes/ import nothing from codegen/, driver/ or cli/', () => {
    expect(violations((f) => under(f, 'ir') || under(f, 'passes'), (t) => ['codegen', 'driver', 'cli'].some((d) => under(t, d)))).toEqual([]);
  });

  it('only cli/ imports ts-morph or tsx', () => {
    expect(violations((f) => !under(f, 'cli'), (t) => /^(ts-morph|tsx)(\/|$)/.test(t))).toEqual([]);
  });

  it("each target's caps live in its own folder (the loop layer keeps only the target-neutral DEFAULT_CAPS)", () => {
    const caps = [...SOURCE_DIRS.flatMap(sourceFiles), 'compiler.ts'].flatMap((file) =>
      [...readFileSync(path.join(root, file), 'utf8').matchAll(/^export const ([A-Z0-9]+)_CAPS\b/gm)].map((m) => `${m[1]!.toLowerCase()}: ${file}`));
    expect(caps.filter((c) => c.startsWith('default:'))).toEqual(['default: codegen/loop/schedule.ts']);
    expect(caps.filter((c) => !c.startsWith('default:')).sort()).toEqual(TARGETS.map((x) => `${x}: codegen/${x}/target.ts`).sort());
  });

  it('importing kiln or kiln/compiler loads neither ts-morph nor tsx', () => {
    ensureBuilt();
    expect(firstHeavyLoad(['dist/frontend/index.js', 'dist/compiler.js'])).toBe('');
    // and both checks can fail: the model-file loader does load them
    expect(firstHeavyLoad(['dist/cli/loader.js'])).toMatch(/^loaded .*node_modules\/(ts-morph|tsx)\/.* from file:/);
    expect(firstHeavyLoad(['dist/cli/loader.js'], false)).toMatch(/^loaded .*node_modules\/(ts-morph|@ts-morph|tsx|typescript)\/.* from require\(\)$/);
  });
});

const HEAVY = String.raw`/\/node_modules\/(ts-morph|@ts-morph|tsx|typescript)\//`;

/**
 * Imports the built modules in a child process whose resolve hook (unless `hook` is false) fails any ES import that
 * lands in ts-morph, tsx or typescript (which ts-morph loads), then looks for them among the CommonJS modules loaded
 * (a require() bypasses the hook); returns what was loaded, or '' when none of them was.
 */
function firstHeavyLoad(modules: string[], hook = true): string {
  const resolve = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (${HEAVY}.test(r.url)) throw new Error('loaded ' + r.url + ' from ' + context.parentURL);
  return r;
}`;
  const script = [
    "import { createRequire, register } from 'node:module';",
    ...(hook ? [`register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(resolve)}));`] : []),
    ...modules.map((m) => `await import(${JSON.stringify(path.join(root, m))});`),
    `const cjs = Object.keys(createRequire(import.meta.url).cache).find((f) => ${HEAVY}.test(f));`,
    "if (cjs) throw new Error('loaded ' + cjs + ' from require()');",
  ].join('\n');
  try {
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return '';
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? '');
    return /loaded \S+ from \S+/.exec(stderr)?.[0] ?? `the child failed otherwise: ${stderr.trim().split('\n').slice(0, 4).join(' | ')}`;
  }
}
