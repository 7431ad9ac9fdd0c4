// The scan op: a serial loop over a leading time axis with a body graph (JAX's lax.scan, XLA's while), its types and evaluation.
//
// `scan` operands: nc initial carries, ns sequences ([length, ...] each, sliced per step along axis 0), then the
// consts (weights, read whole by every step). The body is a graph held as text in the `body` attribute (so printing,
// parsing and hash-consing need nothing new); its inputs, in order, are the carries, one step's slices of the
// sequences, then the consts; its outputs are the nc new carries, then ny per-step outputs. Steps run at time
// t = 0 .. length-1, or length-1 .. 0 with `reverse`. A scan node is ONE of the loop's results, `output` k:
//   k < nc:               the final carry k;
//   nc <= k < nc+ny:      per-step output k-nc stacked by time, [length, ...] (the value of step t at index t);
//   nc+ny <= k < 2nc+ny:  carry k-nc-ny as it entered each step, stacked by time (the carries autodiff saves).
// Scan nodes with the same operands and attributes but `output` are one loop: the lowering runs it once for all of them.
import { Builder, type Graph, type Node } from './graph.js';
import { interpret, type Value } from './interpreter.js';
import { type Attrs, ShapeError, attrsOf } from './ops.js';
import { parseGraph } from './parser.js';
import { printGraph } from './printer.js';
import { type TensorType, allocate, formatType, sizeOf, typesEqual } from './types.js';

export interface ScanInfo {
  readonly body: Graph;
  readonly length: number;
  readonly reverse: boolean;
  readonly output: number;
  /** counts: carries, sequences, consts, per-step outputs */
  readonly nc: number;
  readonly ns: number;
  readonly nk: number;
  readonly ny: number;
}

const bodies = new Map<string, Graph>();

/** The body graph of a scan's `body` text (parsed once per text). */
export function scanBody(text: string): Graph {
  let g = bodies.get(text);
  if (!g) {
    try {
      g = parseGraph(text);
    } catch (e) {
      throw new ShapeError(`scan: body does not parse: ${(e as Error).message}`);
    }
    if (bodies.size > 256) bodies.clear();
    bodies.set(text, g);
  }
  return g;
}

/** The scan's attributes and body read and checked against its operand types (a ShapeError names the problem). */
export function scanInfo(attrs: Attrs, srcs: readonly TensorType[]): ScanInfo {
  const a = attrsOf({ op: 'scan', attrs }, 'scan');
  const fail = (msg: string): never => { throw new ShapeError(`scan: ${msg}`); };
  const body = scanBody(a.body), nc = a.carries, ns = a.seqs, nk = srcs.length - nc - ns;
  if (nc < 0 || ns < 0 || nk < 0) fail(`${srcs.length} operand(s) cannot hold ${nc} carries and ${ns} sequences`);
  if (a.length < 1) fail(`length must be at least 1, got ${a.length}`);
  if (body.params.length || body.updates.length) fail('the body takes no params and updates none (pass weights as consts)');
  if (body.inputs.length !== srcs.length) fail(`the body takes ${body.inputs.length} input(s) but the scan has ${srcs.length} operand(s)`);
  body.inputs.forEach((x, i) => {
    const s = srcs[i]!;
    if (i >= nc && i < nc + ns) {
      if (s.shape[0] !== a.length) fail(`sequence ${i - nc} ${formatType(s)} does not have ${a.length} steps on axis 0`);
      const step = { dtype: s.dtype, shape: s.shape.slice(1) };
      if (!typesEqual(step, x.type)) fail(`body input ${i} is ${formatType(x.type)} but a step of sequence ${i - nc} is ${formatType(step)}`);
    } else if (!typesEqual(s, x.type)) fail(`body input ${i} is ${formatType(x.type)} but operand ${i} is ${formatType(s)}`);
  });
  const ny = body.outputs.length - nc;
  if (ny < 0) fail(`the body has ${body.outputs.length} output(s), fewer than its ${nc} carries`);
  for (let i = 0; i < nc; i++) {
    if (!typesEqual(body.outputs[i]!.node.type, srcs[i]!)) fail(`new carry ${i} is ${formatType(body.outputs[i]!.node.type)} but carry ${i} is ${formatType(srcs[i]!)}`);
  }
  if (a.output < 0 || a.output >= 2 * nc + ny) fail(`output ${a.output} is out of range: the loop has ${2 * nc + ny} results`);
  return { body, length: a.length, reverse: a.reverse, output: a.output, nc, ns, nk, ny };
}

/** The type of result k of a scan. */
export function scanResultType(info: ScanInfo, k: number): TensorType {
  const { body, nc, ny, length } = info;
  if (k < nc) return body.outputs[k]!.node.type;
  const t = k < nc + ny ? body.outputs[k]!.node.type : body.inputs[k - nc - ny]!.type;
  return { dtype: t.dtype, shape: [length, ...t.shape] };
}

export function inferScan(srcs: readonly TensorType[], attrs: Attrs): TensorType {
  const info = scanInfo(attrs, srcs);
  return scanResultType(info, info.output);
}

/** Attributes of a scan node without `output`: the key of its loop (nodes of one loop differ only in output). */
export function loopKey(attrs: Attrs): string {
  const { output: _, ...rest } = attrs;
  return JSON.stringify(rest);
}

/** Every result of the loop, in result order: final carries, stacked outputs, stacked carries. */
export function evalScanAll(attrs: Attrs, src: readonly Value[]): Value[] {
  const info = scanInfo(attrs, src.map((s) => s.type));
  const { body, nc, ns, ny, length: T, reverse } = info;
  const results = Array.from({ length: 2 * nc + ny }, (_, k) => {
    const type = scanResultType(info, k);
    return { type, data: allocate(type.dtype, sizeOf(type.shape)) };
  });
  let carries = src.slice(0, nc).map((s) => s.data);
  const names = body.inputs.map((n) => String(n.attrs['name']));
  for (let i = 0; i < T; i++) {
    const t = reverse ? T - 1 - i : i;
    const bind = new Map<string, Value['data']>();
    src.forEach((s, j) => {
      if (j < nc) bind.set(names[j]!, carries[j]!);
      else if (j < nc + ns) {
        const step = sizeOf(s.type.shape) / T;
        bind.set(names[j]!, s.data.slice(t * step, (t + 1) * step));
      } else bind.set(names[j]!, s.data);
    });
    carries.forEach((c, j) => results[nc + ny + j]!.data.set(c, t * c.length));
    const outs = interpret(body, bind).outputs;
    const vals = body.outputs.map((o) => outs.get(o.name)!.data);
    for (let j = 0; j < ny; j++) results[nc + j]!.data.set(vals[nc + j]!, t * vals[nc + j]!.length);
    carries = vals.slice(0, nc).map((v) => v.slice());
  }
  carries.forEach((c, j) => results[j]!.data.set(c));
  return results;
}

/**
 * Loops evaluated recently, so the results of one loop read by several scan nodes are computed once. Operands are
 * kept as copies and compared by value: an array changed in place since (a weight) is a new loop.
 */
const recent: { key: string; src: readonly Value['data'][]; results: Value[] }[] = [];
const sameData = (a: Value['data'], b: Value['data']): boolean => {
  if (a.constructor !== b.constructor || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
};

/** Result `output` of a scan on concrete operands. */
export function evalScan(attrs: Attrs, src: readonly Value[]): Value['data'] {
  const key = loopKey(attrs), k = attrsOf({ op: 'scan', attrs }, 'scan').output;
  let hit = recent.find((r) => r.key === key && r.src.length === src.length && r.src.every((d, i) => sameData(d, src[i]!.data)));
  if (!hit) {
    hit = { key, src: src.map((s) => s.data.slice()), results: evalScanAll(attrs, src) };
    recent.unshift(hit);
    if (recent.length > 8) recent.pop();
  }
  return hit.results[k]!.data;
}

/** A step function for buildScan: the carries, one step's slices and the consts (nodes of its own builder) to the new carries and the step's outputs. */
export type ScanStep = (b: Builder, carries: Node[], xs: Node[], consts: Node[]) => [Node[], Node[]];

/**
 * Emits a scan loop into `b`: the step is traced into a body graph, then the loop's results are scan nodes.
 * Returns the final carries and the per-step outputs stacked by time ([length, ...]).
 */
export function buildScan(b: Builder, step: ScanStep, inits: readonly Node[], seqs: readonly Node[], consts: readonly Node[], reverse = false): { carries: Node[]; ys: Node[] } {
  const length = seqs[0]?.type.shape[0];
  if (length === undefined) throw new ShapeError('scan: needs at least one sequence (its axis 0 is the time axis)');
  const bb = new Builder();
  const c = inits.map((n, i) => bb.input(`c${i}`, n.type));
  const x = seqs.map((n, i) => bb.input(`x${i}`, { dtype: n.type.dtype, shape: n.type.shape.slice(1) }));
  const k = consts.map((n, i) => bb.input(`k${i}`, n.type));
  const [nc, ys] = step(bb, c, x, k);
  const body = bb.finish('body', [...nc, ...ys].map((node, i) => ({ name: `r${i}`, node })));
  const attrs = { body: printGraph(body), length, carries: inits.length, seqs: seqs.length, reverse };
  const src = [...inits, ...seqs, ...consts];
  const out = (i: number) => b.emit('scan', src, { ...attrs, output: i });
  return { carries: nc.map((_, i) => out(i)), ys: ys.map((_, j) => out(nc.length + j)) };
}
