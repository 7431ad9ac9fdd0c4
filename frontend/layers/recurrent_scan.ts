// keras-side scan: a step function over tensors traced into a scan loop's body (ir/scan.ts), eager or symbolic.
import { topoSort } from '../../ir/graph.js';
import { printGraph } from '../../ir/printer.js';
import { Trace, apply, withTrace } from '../engine.js';
import type { Tensor } from '../tensor.js';

/** One step: the carries, this step's slices of the sequences and the consts, to the new carries and the step's outputs. */
export type StepFn = (carries: Tensor[], xs: Tensor[], consts: Tensor[]) => [Tensor[], Tensor[]];

/**
 * Runs `step` along axis 0 of `seqs` from `inits` (from the last step to the first with `reverse`) as one scan loop:
 * compile time does not grow with the sequence length. Weights the step reads must come in through `consts` (the body
 * is a graph of its own; a variable or traced value it captured would not be in it). Returns the final carries and
 * the per-step outputs stacked by time ([length, ...]; the output of the step at time t at index t).
 */
export function scan(what: string, step: StepFn, inits: readonly Tensor[], seqs: readonly Tensor[], consts: readonly Tensor[], reverse = false): { carries: Tensor[]; ys: Tensor[] } {
  const length = seqs[0]?.shape[0];
  if (length === undefined) throw new Error(`${what}: a scan needs a sequence`);
  const body = new Trace();
  const c = inits.map((t, i) => body.input(`c${i}`, t.dtype, t.shape));
  const x = seqs.map((t, i) => body.input(`x${i}`, t.dtype, t.shape.slice(1)));
  const k = consts.map((t, i) => body.input(`k${i}`, t.dtype, t.shape));
  const [nc, ys] = withTrace(body, () => step(c, x, k));
  if (nc.length !== inits.length) throw new Error(`${what}: the step returned ${nc.length} carries for ${inits.length}`);
  const graph = body.finish('body', [...nc, ...ys].map((t, i) => ({ name: `r${i}`, node: body.nodeOf(t) })));
  // a variable the step reads becomes a param of the body; a value of the outer trace, a leaf the body does not declare
  const stray = topoSort(graph).find((n) => (n.op === 'input' || n.op === 'param') && !graph.inputs.includes(n));
  if (stray) {
    const name = String(stray.attrs['name']);
    throw new Error(`${what}: the step reads ${stray.op === 'param' ? `variable '${name}'` : `'${name}', a value from outside it`}; pass it in the step's consts`);
  }
  const attrs = { body: printGraph(graph), length, carries: inits.length, seqs: seqs.length, reverse };
  const src = [...inits, ...seqs, ...consts];
  const out = (i: number) => apply('scan', src, { ...attrs, output: i });
  return { carries: nc.map((_, i) => out(i)), ys: ys.map((_, j) => out(nc.length + j)) };
}
