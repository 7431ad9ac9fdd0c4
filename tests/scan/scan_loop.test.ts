// Scan loops through the pipeline (fuse, lower, schedule, legalize) on the loop interpreter, CPU and GPU schedules,
// against the graph interpreter bit for bit, forward and with gradients.
import { describe, expect, it } from 'vitest';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { randomBindings } from '../ir/helpers.js';
import { runBoth } from '../passes/differential.js';
import { CASES, caseGraph } from './graphs.js';

describe('scan loops on the loop interpreter', () => {
  for (const c of CASES) {
    for (const [target, caps] of [['cpu', undefined], ['gpu', CUDA_CAPS]] as const) {
      it(`${c.name} (${target} schedule): forward and gradients equal the graph interpreter bit for bit`, () => {
        const g = caseGraph(c, false, true);
        const [inputs] = randomBindings(g, 3);
        const { compiled, diffs } = runBoth(g, Object.fromEntries(inputs), {}, caps);
        expect(verifyProgram(compiled.program)).toEqual([]);
        expect(diffs).toEqual([]);
        // one kernel per loop: the forward loop (with its saved carries) and the reverse loop of the gradient
        expect(compiled.program.kernels.filter((k) => k.ops[0] === 'scan').length).toBe(2);
      });
    }
  }
});
