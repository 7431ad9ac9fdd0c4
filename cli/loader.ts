// Model-file loading: type-check with ts-morph, run with tsx (resolving `kiln` to this package); imported on first use only.
import { createRequire, register } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Project, ts } from 'ts-morph';
import { register as registerTsx } from 'tsx/esm/api';
import { KilnError, displayPath, packageRoot, unprefixed } from './common.js';
import type { Model } from '../frontend/models/model.js';

/**
 * Type-checks a model file (absolute path) and returns one `file:line:col message` line per error.
 * `kiln` maps to the built declarations by `paths`, so files outside this repository resolve too.
 */
export function typeCheck(file: string): string[] {
  const dist = path.join(packageRoot, 'dist');
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
      types: ['node'],
      typeRoots: [typesDir()],
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

/** The @types folder holding @types/node (a dependency of kiln): kiln's own, or the installing project's where npm hoisted it. */
function typesDir(): string {
  try {
    return path.dirname(path.dirname(createRequire(path.join(packageRoot, 'package.json')).resolve('@types/node/package.json')));
  } catch {
    return path.join(packageRoot, 'node_modules', '@types');
  }
}

let hooksInstalled = false;

/**
 * Installs tsx and the resolve hook of hooks.ts (once per process): `kiln` and `kiln/compiler` map to the modules
 * beside this file, so the model shares this process's frontend (one Model class, one trace state); user `.ts` files
 * load as ES modules.
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
  register(new URL('./hooks.js', import.meta.url), { data: aliases });
}

/** Runs a model file (absolute path) and returns its module namespace. */
export async function importModelFile(file: string): Promise<Record<string, unknown>> {
  installHooks();
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
