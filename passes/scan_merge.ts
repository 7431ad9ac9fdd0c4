// mergeScans: a scan loop and the copy of it that autodiff extended with per-step outputs (passes/scan_grad.ts saves
// the body's activations for the backward loop) made one loop, the copy, so the forward steps run once.
import { type Builder, type Graph, type Node, topoSort } from '../ir/graph.js';
import { printGraph } from '../ir/printer.js';
import { loopKey, scanInfo } from '../ir/scan.js';
import { scanLoops } from './scan_grad.js';

/**
 * Whether loop `ext`'s body computes loop `base`'s outputs, then more per-step outputs: same operands and attributes
 * but the body, and its body restricted to base's outputs prints as base's body.
 */
function extendsLoop(base: Node, ext: Node): boolean {
  const { body: _a, output: _b, ...ra } = base.attrs, { body: _c, output: _d, ...rb } = ext.attrs;
  if (base.src.length !== ext.src.length || base.src.some((s, i) => s !== ext.src[i]) || loopKey(ra) !== loopKey(rb)) return false;
  const types = base.src.map((s) => s.type);
  const a = scanInfo(base.attrs, types), b = scanInfo(ext.attrs, types);
  if (b.ny <= a.ny) return false;
  const outs = b.body.outputs.slice(0, a.body.outputs.length);
  return outs.every((o, i) => o.name === a.body.outputs[i]!.name) && printGraph({ ...b.body, outputs: outs }) === base.attrs['body'];
}

/**
 * A rewrite for rebuild (ir/graph.ts): each scan node of a loop that another loop of `g` extends becomes the
 * extending loop's node of the same result (its stacked carries come after the extra outputs).
 */
export function mergeScans(g: Graph): (b: Builder, n: Node, src: Node[]) => Node | undefined {
  const loops = [...new Set(scanLoops(topoSort(g)).values())];
  const into = new Map<Node, { ext: Node; shift: number; ny: number; nc: number }>();
  for (const base of loops) {
    const ext = loops.filter((l) => l !== base && extendsLoop(base[0]!, l[0]!))
      .sort((x, y) => scanInfo(y[0]!.attrs, y[0]!.src.map((s) => s.type)).ny - scanInfo(x[0]!.attrs, x[0]!.src.map((s) => s.type)).ny)[0];
    if (!ext) continue;
    const a = scanInfo(base[0]!.attrs, base[0]!.src.map((s) => s.type)), b = scanInfo(ext[0]!.attrs, ext[0]!.src.map((s) => s.type));
    for (const n of base) into.set(n, { ext: ext[0]!, shift: b.ny - a.ny, ny: a.ny, nc: a.nc });
  }
  return (b, n, src) => {
    const m = into.get(n);
    if (!m) return undefined;
    const k = Number(n.attrs['output']);
    return b.emit('scan', src, { ...m.ext.attrs, output: k < m.nc + m.ny ? k : k + m.shift });
  };
}
