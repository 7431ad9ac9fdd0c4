// The reverse scan reading the forward loop's saved activations (passes/scan_grad.ts) against recomputing them: the same
// bits, one forward loop after dce merges the extended copy (passes/scan_merge.ts), no exp or tanh left to the reverse loop.
import { describe, expect, it } from 'vitest';
import { Builder, type Graph, type Node, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { buildScan, scanInfo } from '../../ir/scan.js';
import { verify } from '../../ir/verifier.js';
import { dce } from '../../passes/dce.js';
import { SAVE_LIMIT_BYTES, scanGrad } from '../../passes/scan_grad.js';
import { randomBindings } from '../ir/helpers.js';
import { CASES, type Case } from './graphs.js';

/** A case's loop and the cotangents of its operands given the inputs `d<k>` as its results' cotangents. */
function gradGraph(c: Case, saveLimit: number): Graph {
  const b = new Builder();
  const x: Record<string, Node> = {};
  for (const [name, t] of Object.entries(c.inputs)) x[name] = b.input(name, t);
  const [inits, seqs, consts] = c.operands(x);
  const { carries, ys } = buildScan(b, c.step, inits, seqs, consts, c.reverse);
  const loop = [...carries, ...ys];
  const cots = loop.map((n, k) => (n.type.dtype === 'float32' ? b.input(`d${k}`, n.type) : undefined));
  const ds = scanGrad(b, loop, cots, saveLimit);
  const outs = [...loop, ...ds.filter((d): d is Node => d !== undefined)];
  return verify(b.finish(`grad_${c.name}`, outs.map((node, i) => ({ name: `o${i}`, node }))));
}

const loops = (g: Graph) => new Set(topoSort(g).filter((n) => n.op === 'scan').map((n) => n.attrs['body'])).size;
/** The ops of the reverse loop's body (the loop running the other way from the one giving the first output). */
function bodyOps(g: Graph): string[] {
  const fwd = g.outputs[0]!.node.attrs['reverse'];
  const rev = topoSort(g).find((n) => n.op === 'scan' && n.attrs['reverse'] !== fwd)!;
  return topoSort(scanInfo(rev.attrs, rev.src.map((s) => s.type)).body).map((m) => m.op);
}

describe('saved activations in the reverse scan', () => {
  for (const c of CASES) {
    it(`${c.name}: the gradients equal the recomputing loop's bit for bit, before and after dce`, () => {
      const saved = gradGraph(c, SAVE_LIMIT_BYTES), recomputed = gradGraph(c, 0);
      const [inputs] = randomBindings(saved, 17);
      const want = interpret(recomputed, inputs).outputs;
      for (const g of [saved, verify(dce(saved))]) {
        const got = interpret(g, inputs).outputs;
        for (const [name, v] of want) expect([...got.get(name)!.data], name).toEqual([...v.data]);
      }
    });

    it(`${c.name}: one forward loop after dce, and the reverse loop computes no exp, tanh or matmul of the forward step`, () => {
      const saved = gradGraph(c, SAVE_LIMIT_BYTES), recomputed = gradGraph(c, 0);
      // the original loop, its extended copy and the reverse loop; dce merges the first into the second
      expect(loops(saved)).toBe(3);
      expect(loops(dce(saved))).toBe(2);
      expect(loops(dce(recomputed))).toBe(2);
      expect(bodyOps(recomputed).filter((op) => op === 'exp' || op === 'tanh').length).toBeGreaterThan(0);
      expect(bodyOps(saved).filter((op) => op === 'exp' || op === 'tanh')).toEqual([]);
      // the reverse step's matmuls: dz @ U^T (and dU's h^T @ dz), not the forward h @ U
      const mm = (g: Graph) => bodyOps(g).filter((op) => op === 'matmul').length;
      expect(mm(saved)).toBe(mm(recomputed) - 1);
    });
  }

  it('recomputes when the saved values would pass the limit', () => {
    const c = CASES[0]!;
    // the LSTM case saves three exps and two tanhs [2,3] per step (its sigmoid's gradient reads no pre-activation, so
    // h @ U is needed by nothing), 5 steps of float32
    const bytes = 5 * (5 * 2 * 3) * 4;
    expect(bodyOps(gradGraph(c, bytes)).filter((op) => op === 'exp').length).toBe(0);
    expect(bodyOps(gradGraph(c, bytes - 1)).filter((op) => op === 'exp').length).toBeGreaterThan(0);
  });
});
