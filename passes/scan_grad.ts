// Reverse-mode autodiff of the scan loop (ir/scan.ts): a reverse scan over what the forward loop saved.
//
// The forward loop stores each step's incoming carries (its results nc+ny.., the same loop, so nothing is computed
// twice), and the backward loop runs the steps in the other order, taking the body's vector-Jacobian product there.
// Its carries are the carries' cotangents and one accumulator per float const (so a weight's gradient costs no
// [length, ...] buffer); its per-step outputs are the sequences' cotangents.
//
// What the backward step needs of the forward step's values (residuals, as JAX calls them) it gets one of two ways:
// - saved (the default): the forward body's matmuls and transcendental math (SAVED) that the vector-Jacobian product
//   reads are extra per-step outputs of the forward loop (the same loop: passes/scan_merge.ts merges the original
//   into the extended copy built here), and the backward body reads them as sequences, recomputing only the cheap
//   elementwise steps between them (an LSTM: the recurrent matmul and five activations per unit, no exp in the
//   backward loop). Cost: length x their size of memory, written once and read once.
// - recomputed, when those would take more than SAVE_LIMIT_BYTES: the backward step reruns the forward body from the
//   saved carries (as jax.checkpoint on a scan body does), keeping memory at the carries (B x units per step) at the
//   price of a second forward body per step. Both ways give the same bits: the same operations on the same values.
import { Builder, type Graph, type Node, topoSort } from '../ir/graph.js';
import { printGraph } from '../ir/printer.js';
import { loopKey, scanInfo } from '../ir/scan.js';
import { type TensorType, dtypeBytes, isFloat, sizeOf } from '../ir/types.js';
import { vjp } from './autodiff.js';

/** Each scan node of `order` mapped to the scan nodes of its loop (same operands, same attributes but output), in order. */
export function scanLoops(order: readonly Node[]): Map<Node, Node[]> {
  const byKey = new Map<string, Node[]>(), out = new Map<Node, Node[]>();
  for (const n of order) {
    if (n.op !== 'scan') continue;
    const key = `${n.src.map((s) => s.id).join(',')}|${loopKey(n.attrs)}`;
    let loop = byKey.get(key);
    if (!loop) byKey.set(key, (loop = []));
    loop.push(n);
    out.set(n, loop);
  }
  return out;
}

/** Copies graph `body` into `b` with its inputs bound to `inputs`; returns its outputs' nodes. */
export function inline(b: Builder, body: Graph, inputs: readonly Node[]): Node[] {
  const map = inlineMap(b, body, inputs);
  return body.outputs.map((o) => map.get(o.node)!);
}

/** As inline, returning every body node's copy. */
function inlineMap(b: Builder, body: Graph, inputs: readonly Node[]): Map<Node, Node> {
  const map = new Map<Node, Node>(body.inputs.map((x, i) => [x, inputs[i]!]));
  for (const n of topoSort(body)) {
    if (map.has(n)) continue;
    map.set(n, n.src.length ? b.emit(n.op, n.src.map((s) => map.get(s)!), n.attrs) : b.leaf(n));
  }
  return map;
}

/** Forward values the backward step reads saved rather than recomputed: matmuls and transcendental math. */
const SAVED: ReadonlySet<string> = new Set(['matmul', 'conv', 'exp', 'log', 'log1p', 'tanh', 'erf', 'sin', 'cos', 'pow']);

/**
 * Most bytes a loop's saved forward values may take (length x their per-step size); beyond it the backward step
 * recomputes them. 128 MiB: an LSTM(128) at batch 32 saves 147 KiB per step (29 MiB at length 200), so sequences of
 * thousands of steps, or batches of hundreds, still save.
 */
export const SAVE_LIMIT_BYTES = 128 * 2 ** 20;

/**
 * The values of the forward copy `fwd` (body node -> copy) that the backward graph `results` reads, saved where SAVED
 * and per step (depending on a carry or a slice, `step`), else recomputed from their operands: the saved ones, in
 * topological order.
 */
function residuals(fwd: ReadonlyMap<Node, Node>, results: readonly Node[], step: readonly Node[]): Node[] {
  const copies = new Set(fwd.values()), varying = new Set(step);
  for (const n of fwd.values()) if (n.src.some((s) => varying.has(s))) varying.add(n);
  const saved = new Set<Node>(), seen = new Set<Node>();
  const need = (n: Node): void => {
    if (seen.has(n) || !varying.has(n) || step.includes(n)) return;
    seen.add(n);
    if (SAVED.has(n.op) && isFloat(n.type.dtype)) saved.add(n);
    else n.src.forEach(need);
  };
  const order = topoSort({ name: 'r', inputs: [], params: [], outputs: results.map((node, i) => ({ name: `${i}`, node })), updates: [] });
  for (const r of results) if (copies.has(r)) need(r);
  for (const n of order) if (!copies.has(n)) n.src.forEach((s) => { if (copies.has(s)) need(s); });
  return order.filter((n) => saved.has(n));
}

function zeros(b: Builder, t: TensorType): Node {
  const c = b.constant(0, t.dtype, []);
  return t.shape.length ? b.emit('broadcast', [c], { shape: [...t.shape] }) : c;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * The cotangents of a scan loop's operands, given the cotangents of its results (`loop`: its scan nodes, `cots`: each
 * one's cotangent or undefined for none). Undefined for an operand that gets none (an int one).
 */
export function scanGrad(b: Builder, loop: readonly Node[], cots: readonly (Node | undefined)[], saveLimit = SAVE_LIMIT_BYTES): (Node | undefined)[] {
  const first = loop[0]!, src = first.src;
  const info = scanInfo(first.attrs, src.map((s) => s.type));
  const { body, nc, ns, nk, ny, length } = info;
  const cot = new Map<number, Node>();
  loop.forEach((n, i) => {
    const c = cots[i], k = Number(n.attrs['output']);
    if (c) cot.set(k, cot.has(k) ? b.emit('add', [cot.get(k)!, c]) : c);
  });
  const carryT = (i: number) => src[i]!.type;
  const stepT = (j: number) => body.inputs[nc + j]!.type;
  const constT = (j: number) => src[nc + ns + j]!.type;
  const fc = range(nc).filter((i) => isFloat(carryT(i).dtype));
  const fs = range(ns).filter((j) => isFloat(stepT(j).dtype));
  const fk = range(nk).filter((j) => isFloat(constT(j).dtype));
  const py = range(ny).filter((j) => cot.has(nc + j));
  const ps = fc.filter((i) => cot.has(nc + ny + i));

  // the backward body: carries (cotangents, accumulators), then per step (saved carries, slices, output and saved
  // carry cotangents), then the consts
  const bb = new Builder();
  const gcIn = fc.map((i) => bb.input(`gc${i}`, carryT(i)));
  const accIn = fk.map((j) => bb.input(`acc${j}`, constT(j)));
  const cIn = range(nc).map((i) => bb.input(`c${i}`, carryT(i)));
  const xIn = range(ns).map((j) => bb.input(`x${j}`, stepT(j)));
  const dyIn = py.map((j) => bb.input(`dy${j}`, body.outputs[nc + j]!.node.type));
  const dsIn = ps.map((i) => bb.input(`dc${i}`, carryT(i)));
  const kIn = range(nk).map((j) => bb.input(`k${j}`, constT(j)));
  const fwd = inlineMap(bb, body, [...cIn, ...xIn, ...kIn]);
  const outs = body.outputs.map((o) => fwd.get(o.node)!);
  const seeds: [Node, Node][] = [...fc.map((i, q): [Node, Node] => [outs[i]!, gcIn[q]!]), ...py.map((j, q): [Node, Node] => [outs[nc + j]!, dyIn[q]!])];
  const grads = vjp(bb, seeds, [...fc.map((i) => cIn[i]!), ...fs.map((j) => xIn[j]!), ...fk.map((j) => kIn[j]!)]);
  const gc = fc.map((i, q) => {
    const s = ps.indexOf(i);
    return s < 0 ? grads[q]! : bb.emit('add', [grads[q]!, dsIn[s]!]);
  });
  const gk = fk.map((_, q) => bb.emit('add', [accIn[q]!, grads[fc.length + fs.length + q]!]));
  const gx = fs.map((_, q) => grads[fc.length + q]!);
  const results = [...gc, ...gk, ...gx];
  const named = (ns: readonly Node[]) => ns.map((node, i) => ({ name: `r${i}`, node }));

  const res = residuals(fwd, results, [...cIn, ...xIn]);
  const resBytes = length * res.reduce((sum, n) => sum + sizeOf(n.type.shape) * dtypeBytes(n.type.dtype), 0);
  const save = res.length > 0 && resBytes <= saveLimit;
  let bwd: Graph, fwdAttrs = first.attrs, nr = 0;
  if (!save) bwd = bb.finish('scan_grad', named(results));
  else {
    // the forward body with the residuals as extra per-step outputs (its own outputs first, unchanged)
    const fb = new Builder(), back = new Map([...fwd].map(([o, c]) => [c, o]));
    const fmap = inlineMap(fb, body, body.inputs.map((x) => fb.leaf(x)));
    const extra = res.map((r, q) => ({ name: `scan_grad/saved${body.outputs.length + q}`, node: fmap.get(back.get(r)!)! }));
    fwdAttrs = { ...first.attrs, body: printGraph(fb.finish(body.name, [...body.outputs.map((o) => ({ name: o.name, node: fmap.get(o.node)! })), ...extra])) };
    nr = res.length;
    // the backward body again, reading the residuals as per-step inputs (after the slices) instead of computing them
    const nb = new Builder(), map = new Map<Node, Node>();
    const leaf = (n: Node) => map.set(n, nb.leaf(n));
    [...gcIn, ...accIn, ...cIn, ...xIn].forEach(leaf);
    res.forEach((r, q) => map.set(r, nb.input(`s${q}`, r.type)));
    [...dyIn, ...dsIn, ...kIn].forEach(leaf);
    const copy = (n: Node): Node => {
      let c = map.get(n);
      if (!c) map.set(n, (c = n.src.length ? nb.emit(n.op, n.src.map(copy), n.attrs) : nb.leaf(n)));
      return c;
    };
    bwd = nb.finish('scan_grad', named(results.map(copy)));
  }

  // the forward loop's saved carries (and residuals): results of the same loop, so the lowering computes them in it
  const fwdResult = (k: number) => b.emit('scan', src, { ...fwdAttrs, output: k });
  const saved = range(nc).map((i) => fwdResult(nc + ny + nr + i));
  const inits = [...fc.map((i) => cot.get(i) ?? zeros(b, carryT(i))), ...fk.map((j) => zeros(b, constT(j)))];
  const seqs = [...saved, ...src.slice(nc, nc + ns), ...range(nr).map((q) => fwdResult(nc + ny + q)), ...py.map((j) => cot.get(nc + j)!), ...ps.map((i) => cot.get(nc + ny + i)!)];
  const attrs = { body: printGraph(bwd), length, carries: inits.length, seqs: seqs.length, reverse: !info.reverse };
  const result = (k: number) => b.emit('scan', [...inits, ...seqs, ...src.slice(nc + ns)], { ...attrs, output: k });
  const ds: (Node | undefined)[] = src.map(() => undefined);
  fc.forEach((i, q) => { ds[i] = result(q); });
  fk.forEach((j, q) => { ds[nc + ns + j] = result(fc.length + q); });
  fs.forEach((j, q) => { ds[nc + j] = result(inits.length + q); });
  return ds;
}
