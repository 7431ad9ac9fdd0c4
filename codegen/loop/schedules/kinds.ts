// Loop kinds: unroll and parallel mark serial loops (vectorize is in vectorize.ts, bind for GPUs in bind.ts).
// Each checks that the loops' iterations may run as the kind says: parallel iterations independent.
import { independentIterations, pureDecls } from '../analysis.js';
import type { AxisKind, Stmt } from '../ir.js';
import { type For, findLoop } from './loops.js';
import { type KernelView, primitive } from './primitive.js';

export interface LoopsArgs {
  readonly loops: readonly string[];
}

/** Sets the kind of each named loop. */
export function setKinds(body: readonly Stmt[], kinds: ReadonlyMap<string, AxisKind>): Stmt[] {
  return body.map((s) => {
    if (s.k !== 'for') return s;
    const inner = setKinds(s.body, kinds), kind = kinds.get(s.v) ?? s.kind;
    return kind === s.kind && inner.every((x, i) => x === s.body[i]) ? s : { ...s, kind, body: inner };
  });
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
