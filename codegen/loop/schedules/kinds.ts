// Loop kinds: unroll, parallel, and bind (GPU blocks and threads) mark serial loops (vectorize is in vectorize.ts).
// Each checks that the loops' iterations may run as the kind says: parallel and GPU iterations independent.
import { independentIterations, pureDecls } from '../analysis.js';
import type { AxisKind, Stmt } from '../ir.js';
import { type For, findLoop } from './loops.js';
import { type KernelView, primitive } from './primitive.js';

export interface LoopsArgs {
  readonly loops: readonly string[];
}

/** Sets the kind of each named loop. */
export function setKinds(body: readonly Stmt[], kinds: ReadonlyMap<string, AxisKind>): Stmt[] {
  return body.map((s) => (s.k !== 'for' ? s : { ...s, kind: kinds.get(s.v) ?? s.kind, body: setKinds(s.body, kinds) }));
}

/** A primitive that marks serial loops as `kind` when `legal` says why not for none of them. */
export function kindPrimitive<A extends LoopsArgs = LoopsArgs>(name: string, kind: AxisKind, legal: (k: KernelView, l: For, a: A) => string | undefined) {
  return primitive<A>({
    name,
    check: (k, a) => {
      for (const v of a.loops) {
        const l = findLoop(k.body, v);
        if (!l) return `no loop '${v}' in the kernel`;
        if (l.kind !== 'serial') return `loop '${v}' is ${l.kind} already`;
        const why = legal(k, l, a);
        if (why) return `loop '${v}': ${why}`;
      }
      return undefined;
    },
    apply: (k, a) => ({ body: setKinds(k.body, new Map(a.loops.map((v) => [v, kind]))) }),
  });
}

/** Whether a top-level loop's iterations are independent (decls it reads are pure, no outer local array). */
function independent(k: KernelView, l: For): string | undefined {
  if (!k.body.includes(l)) return 'not a top-level loop of the kernel';
  const topLocals = new Set(k.body.flatMap((s) => (s.k === 'local' ? [s.name] : [])));
  return independentIterations(l, pureDecls(k.body), topLocals) ? undefined : 'its iterations share state';
}

export const unroll = kindPrimitive('unroll', 'unroll', () => undefined);
export const parallel = kindPrimitive('parallel', 'parallel', independent);

export interface BindArgs {
  /** top-level loops: the grid of each launch */
  readonly blocks: readonly string[];
  /** loops directly in a block loop (one of `blocks` or one already bound): its threads */
  readonly threads: readonly string[];
}

/**
 * bind: loops become GPU block and thread axes (TVM bind to blockIdx.x / threadIdx.x), both in one step, as a
 * block's statements must sit in its thread loops. Block iterations must be independent, and so must a thread
 * loop's, given its block's variable.
 */
export const bind = primitive<BindArgs>({
  name: 'bind',
  check: (k, a) => {
    for (const v of [...a.blocks, ...a.threads]) {
      const l = findLoop(k.body, v);
      if (!l) return `no loop '${v}' in the kernel`;
      if (l.kind !== 'serial') return `loop '${v}' is ${l.kind} already`;
    }
    for (const v of a.blocks) {
      const why = independent(k, findLoop(k.body, v)!);
      if (why) return `loop '${v}': ${why}`;
    }
    for (const v of a.threads) {
      const l = findLoop(k.body, v)!;
      const block = k.body.find((s): s is For => s.k === 'for' && s.body.includes(l));
      if (!block || (block.kind !== 'block' && !a.blocks.includes(block.v))) return `loop '${v}' is not directly in a block loop`;
      const locals = new Set(block.body.flatMap((s) => (s.k === 'local' ? [s.name] : [])));
      if (!independentIterations(l, new Map([...pureDecls(k.body), [block.v, block]]), locals)) return `loop '${v}': its iterations share state`;
    }
    return undefined;
  },
  apply: (k, a) => ({ body: setKinds(k.body, new Map([...a.blocks.map((v) => [v, 'block'] as const), ...a.threads.map((v) => [v, 'thread'] as const)])) }),
});
