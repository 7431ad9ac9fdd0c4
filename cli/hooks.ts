// The module hooks model files run under (registered by run_model.ts; Node runs them on its hooks thread): `kiln` and
// `kiln/compiler` resolve to this package's own modules, and user `.ts` files outside node_modules load as ES modules.
import type { InitializeHook, ResolveHook } from 'node:module';

/** Specifier → URL of the module it stands for, given by run_model.ts when it registers these hooks. */
let aliases: Record<string, string> = {};

export const initialize: InitializeHook<Record<string, string>> = (data) => {
  aliases = data;
};

export const resolve: ResolveHook = async (specifier, context, next) => {
  const alias = Object.hasOwn(aliases, specifier) ? aliases[specifier] : undefined;
  if (alias !== undefined) return { url: alias, format: 'module', shortCircuit: true };
  const r = await next(specifier, context);
  const u = new URL(r.url);
  return u.protocol === 'file:' && u.pathname.endsWith('.ts') && !u.pathname.includes('/node_modules/') ? { ...r, format: 'module' } : r;
};
