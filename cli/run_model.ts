// Model-file running: esbuild or tsx, with `kiln` resolving to this package; imported on first use only.
import { readFileSync } from 'node:fs';
import { builtinModules, createRequire, register } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { KilnError, displayPath, unprefixed } from './common.js';
import type { Model } from '../frontend/models/model.js';
import type { HookData } from './hooks.js';

let hooksInstalled = false;

/**
 * Installs the resolve and load hooks of hooks.ts (once per process): `kiln` and `kiln/compiler` map to the modules
 * beside this file, so the model shares this process's frontend (one Model class, one trace state); user `.ts` files
 * load as ES modules. A model file that imports nothing but kiln and Node's own modules (the examples) is compiled to
 * JavaScript here by esbuild, with the options tsx gives it (withoutTsx), and hooks.ts serves it; any other goes through tsx,
 * whose import and registration cost 130-250 ms (tsx's own hooks thread) that this spares.
 * tsx is registered globally, not with tsImport: tsImport's namespace query would give the model its own copy of kiln.
 */
export async function installHooks(file: string): Promise<void> {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const js = await withoutTsx(file);
  if (js === undefined) (await import('tsx/esm/api')).register();
  else process.setSourceMapsEnabled(true); // as tsx does: errors name the model file's lines
  const aliases = {
    kiln: new URL('../frontend/index.js', import.meta.url).href,
    'kiln/compiler': new URL('../compiler.js', import.meta.url).href,
  };
  // while the direct mode records the run (cli/record.ts), the hooks report every module they resolve
  const recording = (globalThis as Record<symbol, unknown>)[Symbol.for('kiln.hookPort')] as (() => Partial<HookData> | undefined) | undefined;
  const more = recording?.();
  const data: HookData = { aliases, ...(js === undefined ? {} : { sources: { [pathToFileURL(file).href]: js } }), ...more };
  register(new URL('./hooks.js', import.meta.url), { data, ...(more?.port ? { transferList: [more.port] } : {}) });
}

/** tsconfig options that change how tsx compiles a file (a target before ES2022 assigns class fields, too). */
const TRANSFORM_OPTIONS = /"(extends|useDefineForClassFields|experimentalDecorators|emitDecoratorMetadata|verbatimModuleSyntax|preserveValueImports|importsNotUsedAsValues)"/;

/**
 * The model file as JavaScript, or undefined where tsx must run it: a file that imports anything but `kiln`,
 * `kiln/compiler` and Node's modules (tsx resolves `.ts` files and tsconfig paths) or uses require; where the
 * tsconfig.json that tsx would read (the working folder's or above) has an option that changes how a file compiles
 * (tsx applies it to the files it includes: then esbuild, with no tsconfig, compiles as tsx does either way), or
 * TSX_TSCONFIG_PATH names one; or that esbuild cannot compile (tsx reports why).
 */
async function withoutTsx(file: string): Promise<string | undefined> {
  if (!/\.m?ts$/.test(file) || process.env['TSX_TSCONFIG_PATH'] !== undefined) return undefined;
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const builtin = new Set(builtinModules);
  const specifiers = [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])([^'"]*)\1/g)].map((m) => m[2]!);
  if (/\bimport\s*\(\s*[^'"\s]|\brequire\s*\(/.test(source)) return undefined;
  if (!specifiers.every((x) => x === 'kiln' || x === 'kiln/compiler' || x.startsWith('node:') || builtin.has(x))) return undefined;
  for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
    let tsconfig: string | undefined;
    try {
      tsconfig = readFileSync(path.join(dir, 'tsconfig.json'), 'utf8');
    } catch { /* none here */ }
    if (tsconfig !== undefined) {
      const target = /"target"\s*:\s*"([^"]*)"/i.exec(tsconfig)?.[1];
      if (TRANSFORM_OPTIONS.test(tsconfig) || (/"target"/.test(tsconfig) && !/^es(202[2-9]|next)$/i.test(target ?? ''))) return undefined;
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  try {
    // the esbuild tsx uses (kiln depends on it through tsx); its CommonJS entry loads in 10 ms, its ES module wrapper in 45
    const tsx = createRequire(import.meta.url).resolve('tsx/esm/api');
    const esbuild = createRequire(tsx)('esbuild') as typeof import('esbuild');
    const { code } = await esbuild.transform(source, {
      loader: 'ts', format: 'esm', target: `node${process.versions.node}`, sourcemap: 'inline', sourcefile: file, keepNames: true, minifyWhitespace: true,
    });
    return code;
  } catch {
    return undefined;
  }
}

/** Runs a model file (absolute path) and returns its module namespace. */
export async function importModelFile(file: string): Promise<Record<string, unknown>> {
  await installHooks(file);
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/** Loads an ONNX file (absolute path) as a model; its problems are KilnErrors naming the file. */
export async function loadOnnxFile(file: string): Promise<Model> {
  const { loadOnnx } = await import('../io/onnx/import.js');
  try {
    return loadOnnx(file);
  } catch (err) {
    throw new KilnError(unprefixed(err instanceof Error ? err.message : String(err)).split(file).join(displayPath(file)), { cause: err });
  }
}
