// unrollScans: every scan loop (ir/scan.ts) replaced by its body inlined once per step, for consumers without loops
// (the ONNX exporter). Results equal the loop's bit for bit: each step runs the same ops on the same values.
import { type Builder, type Graph, type Node, rebuild } from '../ir/graph.js';
import { loopKey, scanInfo } from '../ir/scan.js';
import { inline } from './scan_grad.js';

/** The loop's results (final carries, stacked outputs, stacked incoming carries) from its body inlined `length` times. */
function unrolled(b: Builder, n: Node, src: readonly Node[]): Node[] {
  const { body, nc, ns, ny, length: T, reverse } = scanInfo(n.attrs, src.map((s) => s.type));
  let carries = src.slice(0, nc);
  const ys: Node[][] = [], saved: Node[][] = [];
  for (let i = 0; i < T; i++) {
    const t = reverse ? T - 1 - i : i;
    const xs = src.slice(nc, nc + ns).map((s) => {
      const sh = s.type.shape;
      const sl = b.emit('slice', [s], { start: sh.map((_, d) => (d === 0 ? t : 0)), end: sh.map((m, d) => (d === 0 ? t + 1 : m)), step: sh.map(() => 1) });
      return b.emit('reshape', [sl], { shape: sh.slice(1) });
    });
    saved[t] = carries;
    const outs = inline(b, body, [...carries, ...xs, ...src.slice(nc + ns)]);
    carries = outs.slice(0, nc);
    ys[t] = outs.slice(nc);
  }
  const stack = (per: Node[][], j: number) => b.emit('concat', per.map((p) => b.emit('reshape', [p[j]!], { shape: [1, ...p[j]!.type.shape] })), { axis: 0 });
  return [...carries, ...Array.from({ length: ny }, (_, j) => stack(ys, j)), ...Array.from({ length: nc }, (_, j) => stack(saved, j))];
}

export function unrollScans(g: Graph): Graph {
  const loops = new Map<string, Node[]>();
  return rebuild(g, (b, n, src) => {
    if (n.op !== 'scan') return undefined;
    const key = `${src.map((s) => s.id).join(',')}|${loopKey(n.attrs)}`;
    let results = loops.get(key);
    if (!results) loops.set(key, (results = unrolled(b, n, src)));
    return results[Number(n.attrs['output'])];
  });
}
