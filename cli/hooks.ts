// The module hooks model files run under (registered by run_model.ts; Node runs them on its hooks thread): `kiln` and
// `kiln/compiler` resolve to this package's own modules, user `.ts` files outside node_modules load as ES modules, and
// a model file that run_model.ts compiled itself loads as that JavaScript.
import type { InitializeHook, LoadHook, ResolveHook } from 'node:module';
import type { MessagePort } from 'node:worker_threads';

/** What run_model.ts gives when it registers these hooks. */
export interface HookData {
  /** Specifier → URL of the module it stands for. */
  aliases: Record<string, string>;
  /** URL → the JavaScript of a model file that runs without tsx (run_model.ts compiled it). */
  sources?: Record<string, string>;
  /** While the direct mode records the run (cli/record.ts): where to post each resolved URL, and a count of them. */
  port?: MessagePort;
  counted?: SharedArrayBuffer;
}

let aliases: Record<string, string> = {};
let sources: Record<string, string> = {};
let report: ((url: string) => void) | undefined;

export const initialize: InitializeHook<HookData> = (data) => {
  aliases = data.aliases;
  sources = data.sources ?? {};
  const { port, counted } = data;
  if (port && counted) {
    const count = new Int32Array(counted);
    report = (url) => {
      port.postMessage(url);
      Atomics.add(count, 0, 1);
    };
  }
};

export const resolve: ResolveHook = async (specifier, context, next) => {
  const alias = Object.hasOwn(aliases, specifier) ? aliases[specifier] : undefined;
  if (alias !== undefined) return { url: alias, format: 'module', shortCircuit: true };
  const r = await next(specifier, context);
  report?.(r.url);
  const u = new URL(r.url);
  return u.protocol === 'file:' && u.pathname.endsWith('.ts') && !u.pathname.includes('/node_modules/') ? { ...r, format: 'module' } : r;
};

export const load: LoadHook = async (url, context, next) =>
  (Object.hasOwn(sources, url) ? { format: 'module', source: sources[url], shortCircuit: true } : next(url, context));
