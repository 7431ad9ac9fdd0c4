// 64-bit indexing (issue 14, host path): a launch that reaches a buffer of more than 2^31 - 1 elements computes its
// indices in long long (loop variables, integer decls, the block index decoded), the others keep int. Checked on
// the rendered CUDA (such a model needs 8 GiB a tensor: it is not run here); nvcc and g++ (the emulated build)
// compile it cleanly.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { parseGraph } from '../../ir/parser.js';
import { expectNvccClean } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-wide-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The kernel of model.cu whose body mentions `buffer` (its name and source). */
function kernelsUsing(cu: string, buffer: string): string[] {
  return cu.split(/\n(?=KILN_KERNEL\()/).filter((k) => k.startsWith('KILN_KERNEL(') && k.includes(` *const ${buffer} =`));
}

describe('64-bit indexing past 2^31 - 1 elements', () => {
  it('the launches reaching the 2^31-element tensors index in long long, the others in int; nvcc and g++ build it', () => {
    const g = parseGraph(`graph @wide {
  %0 = input {name="x"} : f32[4,536870912]
  %1 = mul %0, %0 : f32[4,536870912]
  %2 = reduce_sum %1 {axes=[1]} : f32[4]
  output "y" = %1
  output "s" = %2
}`);
    const dir = path.join(tmp, 'wide');
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], nvcc: false });
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    const wide = [...kernelsUsing(cu, 'in_x'), ...kernelsUsing(cu, 'out_y')];
    expect(wide.length).toBeGreaterThanOrEqual(2); // the square, the row sums' first level
    for (const k of wide) {
      expect(k).toMatch(/const long long \w+ = KILN_BLOCK_ID/);
      expect(k).toMatch(/KILN_THREADS_WIDE\(/);
      expect(k).not.toMatch(/KILN_THREADS\(|\bint \w+ = |for \(int /);
    }
    // the square's element index g * 1024 + t reaches 2^31 - 1: a 64-bit decl
    expect(wide.join('\n')).toMatch(/long long \w+ = \(\(\w+ \* 1024\) \+ \w+\);/);
    // the row sums' last levels (over 4 x 64 partials) reach no large buffer
    const narrow = kernelsUsing(cu, 'out_s').filter((k) => !wide.includes(k));
    expect(narrow).toHaveLength(1);
    expect(narrow[0]).toMatch(/const int \w+ = KILN_BLOCK_ID/);
    expect(narrow[0]).not.toMatch(/long long/);
    if (hasNvcc()) expectNvccClean(dir);
  }, 120_000);
});
