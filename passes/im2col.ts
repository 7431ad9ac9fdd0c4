// im2col: a convolution becomes window slices gathered into patches and one matmul, so it runs on the
// targets' register-blocked matmul micro-kernel. Same sums in the same order (window positions, then channels).
import { type Builder, type Graph, type Node, rebuild } from '../ir/graph.js';
import { sizeOf } from '../ir/types.js';

/** Largest patch matrix (elements) the pass will materialize. */
const MAX_PATCH_ELEMENTS = 1 << 24;

function im2col(b: Builder, n: Node, src: Node[]): Node | undefined {
  const [x, k] = src as [Node, Node];
  const a = n.attrs;
  const nsp = x.type.shape.length - 2;
  const groups = a['groups'] as number, ldil = a['lhsDilation'] as number[];
  const strides = a['strides'] as number[], dil = a['dilation'] as number[], pad = a['padding'] as [number, number][];
  if (groups !== 1 || ldil.some((d) => d !== 1) || pad.some(([lo, hi]) => lo < 0 || hi < 0)) return undefined;
  const win = k.type.shape.slice(0, nsp), cin = k.type.shape[nsp]!, cout = k.type.shape[nsp + 1]!;
  const out = n.type.shape.slice(1, nsp + 1), batch = x.type.shape[0]!;
  const rows = batch * sizeOf(out), depth = sizeOf(win) * cin;
  if (rows * depth > MAX_PATCH_ELEMENTS || rows === 0 || depth === 0) return undefined;
  const xp = pad.some(([lo, hi]) => lo || hi) ? b.emit('pad', [x], { padding: [[0, 0], ...pad, [0, 0]], value: 0 }) : x;
  // one strided slice per window position, in row-major window order, then channels: patch[.., (w, c)]
  const slices: Node[] = [];
  const positions: number[][] = [[]];
  for (const w of win) positions.splice(0, positions.length, ...positions.flatMap((p) => Array.from({ length: w }, (_, i) => [...p, i])));
  for (const p of positions) {
    const start = [0, ...p.map((i, d) => i * dil[d]!), 0];
    const step = [1, ...strides, 1];
    const end = xp.type.shape.map((size, d) => (d === 0 || d === nsp + 1 ? size : start[d]! + (out[d - 1]! - 1) * step[d]! + 1));
    slices.push(b.emit('slice', [xp], { start, end, step }));
  }
  const patches = slices.length === 1 ? slices[0]! : b.emit('concat', slices, { axis: nsp + 1 });
  const lhs = b.emit('reshape', [patches], { shape: [1, rows, depth] });
  const rhs = b.emit('reshape', [k], { shape: [1, depth, cout] });
  return b.emit('reshape', [b.emit('matmul', [lhs, rhs])], { shape: [...n.type.shape] });
}

/** Pass: rewrites every eligible conv (one group, no input dilation) into patches and a matmul. */
export function im2colPass(g: Graph): Graph {
  return rebuild(g, (b, n, src) => (n.op === 'conv' ? im2col(b, n, src) : undefined));
}
