// The tiled matmuls on the emulated CUDA build, in one model (one build): float4 staging of shared tiles
// (gpu_matmul.ts splits a row-staged tile's fill into 4 lanes; codegen/cuda/float4.ts renders them as one 16-byte
// copy where both addresses are provably aligned, else scalar) and split-K (gpu_split_k.ts). Every output equals
// the graph interpreter on the graph with its declared trees bit for bit; nvcc builds it for sm_90 with no
// warning and no spill.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { H100, matmulPlan } from '../../codegen/loop/gpu.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { expectNvccClean, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-float4-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// y1: B's rows of 64 floats (float4); y2: K = 787 padded to 800 (float4 copies, float4 zeros past K); y3: rows of
// 30 floats (no multiple of 16 bytes: scalar); y4: a weight gradient's shape the cost model splits over K
const g0 = parseGraph(`graph @m {
  %0 = input {name="x1"} : f32[1024,64]
  %1 = param {name="w1"} : f32[64,64]
  %2 = matmul %0, %1 : f32[1024,64]
  %3 = mul %2, %2 : f32[1024,64]
  output "y1" = %3
  %4 = input {name="x2"} : f32[256,787]
  %5 = param {name="w2"} : f32[787,32]
  %6 = matmul %4, %5 : f32[256,32]
  %7 = mul %6, %6 : f32[256,32]
  output "y2" = %7
  %8 = param {name="w3"} : f32[787,30]
  %9 = matmul %4, %8 : f32[256,30]
  %10 = mul %9, %9 : f32[256,30]
  output "y3" = %10
  %11 = input {name="a"} : f32[1024,384]
  %12 = input {name="d"} : f32[1024,64]
  %13 = transpose %11 {perm=[1, 0]} : f32[384,1024]
  %14 = matmul %13, %12 : f32[384,64]
  %15 = mul %14, %14 : f32[384,64]
  output "y4" = %15
}`);

describe('tiled matmuls on the emulated build: float4 staging and split-K', () => {
  it('float4 where aligned, scalar where not, split-K partials and combine: bit for bit, nvcc clean', () => {
    expect(matmulPlan(384, 64, 1024, 1, H100).split).toBe(true);
    const g = reductionTrees(g0, H100); // the reference follows the trees the CUDA pipeline declares
    const data = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s) * 3);
    const inputs = { x1: data(1024 * 64, 1), x2: data(256 * 787, 2), a: data(1024 * 384, 3), d: data(1024 * 64, 4) };
    const params = { w1: data(64 * 64, 5), w2: data(787 * 32, 6), w3: data(787 * 30, 7) };
    const dir = path.join(tmp, 'm');
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params), nvcc: false });
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu).toMatch(/KILN_FLOAT4_COPY\(&Bs\w*\[[^\]]+\], &p_w1\[/);
    expect(cu).toMatch(/KILN_FLOAT4_COPY\(&Bs\w*\[[^\]]+\], &p_w2\[/);
    expect(cu).toMatch(/KILN_FLOAT4_FILL\(&Bs\w*\[[^\]]+\], 0\.0f\)/);
    expect(cu).not.toMatch(/KILN_FLOAT4_COPY\([^;]*p_w3\[/);
    expect(cu).toMatch(/splitk\w*/);
    const got = runMain(path.join(dir, 'model_main_emu'), dir, g, inputs), want = interpret(g, inputs, params).outputs;
    for (const y of ['y1', 'y2', 'y3', 'y4']) expect(Array.from(got.get(y)!), y).toEqual(Array.from(want.get(y)!.data));
    if (hasNvcc()) expectNvccClean(dir);
  }, 120_000);
});
