// The scan op in the graph IR: types, text round trip, verifier, interpreter and autodiff against the unrolled loop.
import { describe, expect, it } from 'vitest';
import { Builder, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { printGraph } from '../../ir/printer.js';
import { buildScan } from '../../ir/scan.js';
import { verify } from '../../ir/verifier.js';
import { unrollScans } from '../../passes/unroll_scan.js';
import { randomBindings } from '../ir/helpers.js';
import { CASES, caseGraph, rnnStep } from './graphs.js';

describe('scan in the graph IR', () => {
  for (const c of CASES) {
    it(`${c.name}: the interpreter gives the unrolled loop's results bit for bit`, () => {
      const g = verify(caseGraph(c, false)), u = caseGraph(c, true);
      const [inputs] = randomBindings(g, 11);
      const a = interpret(g, inputs).outputs, b = interpret(u, inputs).outputs;
      for (const [name, v] of b) expect([...a.get(name)!.data], name).toEqual([...v.data]);
    });

    it(`${c.name}: gradients agree with the unrolled loop's and with central differences`, () => {
      const g = verify(caseGraph(c, false, true)), u = caseGraph(c, true, true);
      const [inputs] = randomBindings(g, 5);
      for (const x of g.inputs) if (x.type.dtype === 'float32') (inputs.get(String(x.attrs['name'])) as Float32Array).forEach((v, i, a) => { a[i] = v / 2; });
      const a = interpret(g, inputs).outputs, b = interpret(u, inputs).outputs;
      const loss = (bind: Map<string, Float32Array | Int32Array | Uint8Array>) => interpret(g, bind).outputs.get('loss')!.data[0]!;
      for (const [name, v] of b) {
        if (!name.startsWith('grad/')) continue;
        const got = a.get(name)!.data;
        v.data.forEach((want, i) => expect(Math.abs(got[i]! - want), `${name}[${i}]`).toBeLessThan(1e-5 + 1e-5 * Math.abs(want)));
        // central differences on a few elements (float64 would be exact; float32 needs eps ~1e-2)
        const x = inputs.get(name.slice(5)) as Float32Array;
        for (const i of [0, Math.floor(x.length / 2), x.length - 1]) {
          const saved = x[i]!, eps = 1e-2;
          x[i] = saved + eps; const hi = loss(inputs);
          x[i] = saved - eps; const lo = loss(inputs);
          x[i] = saved;
          expect(Math.abs((hi - lo) / (2 * eps) - got[i]!), `${name}[${i}] vs finite differences`).toBeLessThan(2e-2 * (1 + Math.abs(got[i]!)));
        }
      }
    });

    it(`${c.name}: prints and parses back to the same text`, () => {
      const text = printGraph(caseGraph(c, false, true));
      expect(printGraph(parseGraph(text))).toBe(text);
    });
  }

  it('rejects ill-formed loops with a one-line message', () => {
    const b = new Builder();
    const h = b.input('h', { dtype: 'float32', shape: [3, 4] }), t = b.input('t', { dtype: 'int32', shape: [] });
    const x = b.input('x', { dtype: 'float32', shape: [6, 3, 4] }), u = b.input('u', { dtype: 'float32', shape: [4, 4] });
    const bias = b.input('bias', { dtype: 'float32', shape: [4] });
    const { carries } = buildScan(b, rnnStep, [h, t], [x], [u, bias]);
    const attrs = carries[0]!.attrs;
    expect(() => b.emit('scan', [h, t, x, u], attrs)).toThrow(/scan: the body takes 5 input\(s\) but the scan has 4 operand/);
    expect(() => b.emit('scan', [h, t, u, u, bias], attrs)).toThrow(/scan: sequence 0 f32\[4,4\] does not have 6 steps/);
    expect(() => b.emit('scan', [h, t, x, u, bias], { ...attrs, output: 9 })).toThrow(/scan: output 9 is out of range/);
    expect(() => b.emit('scan', [h, t, x, u, bias], { ...attrs, body: 'graph @x {' })).toThrow(/scan: body does not parse|scan: the body takes/);
    expect(() => b.emit('scan', [x, t, x, u, bias], attrs)).toThrow(/scan: body input 0 is f32\[3,4\] but operand 0 is f32\[6,3,4\]/);
  });
});

describe('unrollScans', () => {
  it('replaces every loop (with gradients: the forward and reverse loops) by its steps, equal bit for bit', () => {
    const g = caseGraph(CASES[0]!, false, true), u = unrollScans(g);
    expect(topoSort(g).some((n) => n.op === 'scan')).toBe(true);
    expect(topoSort(u).some((n) => n.op === 'scan')).toBe(false);
    const [inputs] = randomBindings(g, 13);
    const a = interpret(g, inputs).outputs, b = interpret(verify(u), inputs).outputs;
    for (const [name, v] of a) expect([...b.get(name)!.data], name).toEqual([...v.data]);
  });
});
