// Reverse-mode autodiff of the scan loop (ir/scan.ts): a reverse scan over the carries the forward loop saved.
//
// The choice: the forward loop stores each step's incoming carries (its results nc+ny.., the same loop, so nothing is
// computed twice), and the backward loop runs the steps in the other order, recomputing each step's body from its
// saved carry and taking the body's vector-Jacobian product there. Its carries are the carries' cotangents and one
// accumulator per float const (so a weight's gradient costs no [length, ...] buffer); its per-step outputs are the
// sequences' cotangents. Recomputing the body inside the backward step keeps memory at the carries (B x units per
// step) instead of every intermediate of every step, at the price of a second forward body per step (as
// jax.checkpoint on a scan body does).
import { Builder, type Graph, type Node, topoSort } from '../ir/graph.js';
import { printGraph } from '../ir/printer.js';
import { loopKey, scanInfo } from '../ir/scan.js';
import { type TensorType, isFloat } from '../ir/types.js';
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
  const map = new Map<Node, Node>(body.inputs.map((x, i) => [x, inputs[i]!]));
  for (const n of topoSort(body)) {
    if (map.has(n)) continue;
    map.set(n, n.src.length ? b.emit(n.op, n.src.map((s) => map.get(s)!), n.attrs) : b.leaf(n));
  }
  return body.outputs.map((o) => map.get(o.node)!);
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
export function scanGrad(b: Builder, loop: readonly Node[], cots: readonly (Node | undefined)[]): (Node | undefined)[] {
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
  const outs = inline(bb, body, [...cIn, ...xIn, ...kIn]);
  const seeds: [Node, Node][] = [...fc.map((i, q): [Node, Node] => [outs[i]!, gcIn[q]!]), ...py.map((j, q): [Node, Node] => [outs[nc + j]!, dyIn[q]!])];
  const grads = vjp(bb, seeds, [...fc.map((i) => cIn[i]!), ...fs.map((j) => xIn[j]!), ...fk.map((j) => kIn[j]!)]);
  const gc = fc.map((i, q) => {
    const s = ps.indexOf(i);
    return s < 0 ? grads[q]! : bb.emit('add', [grads[q]!, dsIn[s]!]);
  });
  const gk = fk.map((_, q) => bb.emit('add', [accIn[q]!, grads[fc.length + fs.length + q]!]));
  const gx = fs.map((_, q) => grads[fc.length + q]!);
  const bwd = bb.finish('scan_grad', [...gc, ...gk, ...gx].map((node, i) => ({ name: `r${i}`, node })));

  // the forward loop's saved carries: results of the same loop, so the lowering computes them in it
  const saved = range(nc).map((i) => b.emit('scan', src, { ...first.attrs, output: nc + ny + i }));
  const inits = [...fc.map((i) => cot.get(i) ?? zeros(b, carryT(i))), ...fk.map((j) => zeros(b, constT(j)))];
  const seqs = [...saved, ...src.slice(nc, nc + ns), ...py.map((j) => cot.get(nc + j)!), ...ps.map((i) => cot.get(nc + ny + i)!)];
  const attrs = { body: printGraph(bwd), length, carries: inits.length, seqs: seqs.length, reverse: !info.reverse };
  const result = (k: number) => b.emit('scan', [...inits, ...seqs, ...src.slice(nc + ns)], { ...attrs, output: k });
  const ds: (Node | undefined)[] = src.map(() => undefined);
  fc.forEach((i, q) => { ds[i] = result(q); });
  fk.forEach((j, q) => { ds[nc + ns + j] = result(fc.length + q); });
  fs.forEach((j, q) => { ds[nc + j] = result(inits.length + q); });
  return ds;
}
