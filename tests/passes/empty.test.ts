// The empty pass as before/after IR text, and the interpreter's results unchanged by it on the empty-tensor reproducers.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { printGraph } from '../../ir/printer.js';
import { verify } from '../../ir/verifier.js';
import { sizeOf } from '../../ir/types.js';
import { parseRepro } from '../../fuzz/repro.js';
import { removeEmpty } from '../../passes/empty.js';
import { randomBindings } from './random_graphs.js';

describe('empty', () => {
  it('empty values become empty constants, values read from them the constants they equal', () => {
    const before = parseGraph(`graph @g {
  %0 = input {name="x"} : f32[2,0]
  %1 = input {name="y"} : f32[2,3]
  %2 = param {name="w"} : i32[0]
  %3 = exp %0 : f32[2,0]
  %4 = concat %0, %1, %3 {axis=1} : f32[2,3]
  %5 = reduce_sum %3 {axes=[1], keepdims=false} : f32[2]
  %6 = reduce_prod %3 {axes=[1], keepdims=false} : f32[2]
  %7 = transpose %0 {perm=[1, 0]} : f32[0,2]
  %8 = matmul %3, %7 : f32[2,2]
  %9 = pad %3 {padding=[[0, 0], [1, 0]], value=-2} : f32[2,1]
  %10 = neg %2 : i32[0]
  output "e" = %3
  output "c" = %4
  output "s" = %5
  output "p" = %6
  output "m" = %8
  output "pad" = %9
  update %2 = %10
}
`);
    expect(printGraph(verify(removeEmpty(before)))).toBe(`graph @g {
  %0 = input {name="x"} : f32[2,0]
  %1 = input {name="y"} : f32[2,3]
  %2 = param {name="w"} : i32[0]
  %3 = const {value=[]} : f32[2,0]
  %4 = const {value=[0]} : f32[2]
  %5 = const {value=[1]} : f32[2]
  %6 = const {value=[0]} : f32[2,2]
  %7 = const {value=[-2]} : f32[2,1]
  output "e" = %3
  output "c" = %1
  output "s" = %4
  output "p" = %5
  output "m" = %6
  output "pad" = %7
}
`);
  });

  const dir = path.join(import.meta.dirname, '../fuzz/repro');
  for (const f of readdirSync(dir).filter((x) => x.startsWith('empty-'))) {
    it(`${f}: the interpreter's results are unchanged`, () => {
      const { graph, dataSeed } = parseRepro(readFileSync(path.join(dir, f), 'utf8'));
      const after = verify(removeEmpty(graph));
      const [inputs, params] = randomBindings(graph, dataSeed);
      const a = interpret(graph, inputs, params), b = interpret(after, inputs, params);
      for (const [name, v] of a.outputs) expect([...b.outputs.get(name)!.data], `output ${name}`).toEqual([...v.data]);
      // an empty param has nothing to update: its update is dropped
      for (const [name, v] of a.updates) if (sizeOf(v.type.shape)) expect([...b.updates.get(name)!.data], `update ${name}`).toEqual([...v.data]);
    });
  }
});
