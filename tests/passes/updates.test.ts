// In-place parameter updates on the loop interpreter under every target's schedule: a nest may write a param's
// own buffer only where it reads the param at exactly the element it writes (issue 11).
import { describe, expect, it } from 'vitest';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import type { TargetCaps } from '../../codegen/loop/schedule.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runBoth } from './differential.js';
import { IN_PLACE, UPDATE_GRAPHS, updateCase } from './update_graphs.js';

// the GPU schedule also runs with its block and thread loops reversed (runBoth): a race changes bits
const SCHEDULES: [string, TargetCaps][] = [['wasm', WASM_CAPS], ['llvm', LLVM_CAPS], ['cuda', CUDA_CAPS]];

describe.each(SCHEDULES)('in-place updates equal the graph interpreter (%s schedule)', (_, caps) => {
  it.each(Object.keys(UPDATE_GRAPHS))('%s', (name) => {
    const { g, inputs, params } = updateCase(name);
    const { diffs, ref, compiled } = runBoth(g, inputs, params, caps);
    expect(diffs).toEqual([]);
    expect(ref.updates.size).toBe(g.updates.length);
    // and the update is still written straight into the param where it reads only its own element
    const own = (u: { name: string; buffer: string }) => compiled.program.params.find((p) => p.name === u.name)!.buffer === u.buffer;
    if (IN_PLACE.includes(name)) expect(compiled.program.updates.every(own)).toBe(true);
  });
});
