// Scan graphs for the tests: small recurrent cells built once as a scan loop and once unrolled over time.
import { Builder, type Graph, type Node } from '../../ir/graph.js';
import { type ScanStep, buildScan } from '../../ir/scan.js';
import { gradients } from '../../passes/autodiff.js';

const f32 = (...shape: number[]) => ({ dtype: 'float32' as const, shape });

/** An LSTM-like cell over xw [T, B, 4U] with recurrent kernel U [U, 4U]: carries h, c; per step h. */
export const lstmStep: ScanStep = (b, [h, c], [xw], [u]) => {
  const z = b.emit('add', [xw!, b.emit('matmul', [h!, u!])]);
  const n = h!.type.shape[1]!, bsz = h!.type.shape[0]!;
  const gate = (k: number) => b.emit('slice', [z], { start: [0, k * n], end: [bsz, (k + 1) * n], step: [1, 1] });
  const sig = (x: Node) => b.emit('recip', [b.emit('add', [b.constant(1, 'float32', [bsz, n]), b.emit('exp', [b.emit('neg', [x])])])]);
  const i = sig(gate(0)), f = sig(gate(1)), o = sig(gate(3)), g = b.emit('tanh', [gate(2)]);
  const c2 = b.emit('add', [b.emit('mul', [f, c!]), b.emit('mul', [i, g])]);
  const h2 = b.emit('mul', [o, b.emit('tanh', [c2])]);
  return [[h2, c2], [h2]];
};

/** A plain RNN with an int32 step counter carry and a second per-step output (h squared). */
export const rnnStep: ScanStep = (b, [h, t], [x], [u, bias]) => {
  const h2 = b.emit('tanh', [b.emit('add', [b.emit('add', [x!, b.emit('matmul', [h!, u!])]), b.emit('broadcast', [bias!], { shape: [...h!.type.shape] })])]);
  return [[h2, b.emit('add', [t!, b.constant(1, 'int32')])], [h2, b.emit('mul', [h2, h2])]];
};

export interface Case {
  readonly name: string;
  readonly step: ScanStep;
  readonly inputs: Record<string, { dtype: 'float32' | 'int32'; shape: number[] }>;
  /** operands of the loop from the graph's inputs: initial carries, sequences, consts */
  readonly operands: (x: Record<string, Node>) => [Node[], Node[], Node[]];
  readonly reverse: boolean;
}

export const CASES: readonly Case[] = [
  {
    name: 'lstm', step: lstmStep, reverse: false,
    inputs: { h0: f32(2, 3), c0: f32(2, 3), xw: f32(5, 2, 12), u: f32(3, 12) },
    operands: (x) => [[x.h0!, x.c0!], [x.xw!], [x.u!]],
  },
  {
    name: 'rnn-reverse', step: rnnStep, reverse: true,
    inputs: { h0: f32(3, 4), t0: { dtype: 'int32', shape: [] }, x: f32(6, 3, 4), u: f32(4, 4), bias: f32(4) },
    operands: (x) => [[x.h0!, x.t0!], [x.x!], [x.u!, x.bias!]],
  },
];

/**
 * The cases' loops in one graph (inputs and outputs prefixed by the case's name when there are several): every final
 * carry and stacked output, and `loss`, a weighted sum of them all; with the gradients of the float inputs.
 */
export function casesGraph(cases: readonly Case[], unrolled: boolean, withGrads = false): Graph {
  const b = new Builder();
  const named: { name: string; node: Node }[] = [];
  let loss: Node | undefined;
  for (const c of cases) {
    const pre = cases.length > 1 ? `${c.name}/` : '';
    const x: Record<string, Node> = {};
    for (const [name, t] of Object.entries(c.inputs)) x[name] = b.input(pre + name, t);
    const [inits, seqs, consts] = c.operands(x);
    const { carries, ys } = unrolled ? unroll(b, c.step, inits, seqs, consts, c.reverse) : buildScan(b, c.step, inits, seqs, consts, c.reverse);
    const outs = [...carries, ...ys];
    // each element of each float result has its own weight in the loss
    outs.forEach((o, i) => {
      named.push({ name: `${pre}out${i}`, node: o });
      if (o.type.dtype !== 'float32') return;
      const n = o.type.shape.reduce((a, d) => a * d, 1);
      const w = b.constant(Array.from({ length: n }, (_, j) => Math.sin(j + 3 * i)), 'float32', o.type.shape);
      const s = b.emit('reduce_sum', [b.emit('mul', [o, w])], { axes: o.type.shape.map((_, d) => d) });
      loss = loss ? b.emit('add', [loss, s]) : s;
    });
  }
  named.push({ name: 'loss', node: loss! });
  if (withGrads) {
    const wrt = b.inputs.filter((n) => n.type.dtype === 'float32');
    gradients(b, loss!, wrt).forEach((node, i) => named.push({ name: `grad/${String(wrt[i]!.attrs['name'])}`, node }));
  }
  return b.finish(cases.length > 1 ? 'scan_cases' : `scan_${cases[0]!.name}`, named);
}

/** One case's loop as a graph (casesGraph of it alone). */
export function caseGraph(c: Case, unrolled: boolean, withGrads = false): Graph {
  return casesGraph([c], unrolled, withGrads);
}

/** The same loop unrolled: the step traced once per time step into b. */
export function unroll(b: Builder, step: ScanStep, inits: readonly Node[], seqs: readonly Node[], consts: readonly Node[], reverse: boolean): { carries: Node[]; ys: Node[] } {
  const T = seqs[0]!.type.shape[0]!;
  let carries = [...inits];
  const per: Node[][] = [];
  for (let i = 0; i < T; i++) {
    const t = reverse ? T - 1 - i : i;
    const xs = seqs.map((s) => {
      const sh = s.type.shape;
      const sl = b.emit('slice', [s], { start: sh.map((_, d) => (d === 0 ? t : 0)), end: sh.map((n, d) => (d === 0 ? t + 1 : n)), step: sh.map(() => 1) });
      return b.emit('reshape', [sl], { shape: sh.slice(1) });
    });
    const [nc, ys] = step(b, carries, xs, [...consts]);
    carries = nc;
    per[t] = ys;
  }
  const ys = per[0]!.map((_, j) => b.emit('concat', per.map((p) => b.emit('reshape', [p[j]!], { shape: [1, ...p[j]!.type.shape] })), { axis: 0 }));
  return { carries, ys };
}
