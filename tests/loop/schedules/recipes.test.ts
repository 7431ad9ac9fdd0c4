// Recipes on lowered graphs: after every primitive a recipe applies, the program verifies and computes what the
// plain lowered program computes, bit for bit; and each recipe does what it is for (register tiles, packed panels,
// row caches with R rows at a time).
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import type { Program, Stmt } from '../../../codegen/loop/ir.js';
import { lower } from '../../../codegen/loop/lower.js';
import { printProgram } from '../../../codegen/loop/printer.js';
import { DEFAULT_CAPS, type TargetCaps } from '../../../codegen/loop/schedule.js';
import { CUDA_CAPS } from '../../../codegen/cuda/target.js';
import { schedule } from '../../../codegen/loop/schedules/index.js';
import { simplify } from '../../../codegen/loop/simplify.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import { LLVM_CAPS } from '../../../codegen/llvm/target.js';
import { parseGraph } from '../../../ir/parser.js';
import { fuse } from '../../../passes/fuse.js';
import { randomBindings, randomGraph } from '../../passes/random_graphs.js';
import type { Graph } from '../../../ir/graph.js';

const CAPS: Record<string, TargetCaps> = { wasm: DEFAULT_CAPS, llvm: { ...LLVM_CAPS, threads: 2, parallelGrain: 64 }, cuda: CUDA_CAPS, plain: { ...DEFAULT_CAPS, vectorWidth: 1 } };

/** The plain lowered program of a graph (no caps: lowering decides nothing for a target). */
function plain(g: Graph): Program {
  return simplify(lower(fuse(g), { name: g.name }));
}

/** Schedules p for caps, checking the program after every step; returns the steps' names. */
function checkedSchedule(g: Graph, p: Program, caps: TargetCaps): { steps: string[]; program: Program } {
  const [inputs, params] = randomBindings(g, 3);
  const run = (q: Program) => runProgram(q, Object.fromEntries(inputs), Object.fromEntries(params), { reverse: true });
  const want = run(p);
  const steps: string[] = [];
  const program = schedule(p, caps, (name, q) => {
    steps.push(name);
    expect(verifyProgram(q), `after ${name}:\n${printProgram(q)}`).toEqual([]);
    const got = run(q);
    for (const [k, w] of [...want.outputs, ...want.updates]) {
      const h = got.outputs.get(k) ?? got.updates.get(k)!;
      expect(new Uint32Array(h.buffer), `${k} after ${name}`).toEqual(new Uint32Array(w.buffer));
    }
  });
  return { steps, program };
}

function* walk(stmts: readonly Stmt[]): Generator<Stmt> {
  for (const s of stmts) {
    yield s;
    if (s.k === 'for') yield* walk(s.body);
  }
}

const MM = `graph @mm {
  %0 = input {name="a"} : f32[32,24]
  %1 = input {name="b"} : f32[24,192]
  %2 = matmul %0, %1 : f32[32,192]
  %3 = tanh %2 : f32[32,192]
  output "y" = %3
}`;
const SOFTMAX = `graph @mms {
  %0 = input {name="a"} : f32[16,8]
  %1 = input {name="b"} : f32[8,12]
  %2 = matmul %0, %1 : f32[16,12]
  %3 = reduce_max %2 {axes=[1], keepdims=true} : f32[16,1]
  %4 = broadcast %3 {shape=[16, 12]} : f32[16,12]
  %5 = sub %2, %4 : f32[16,12]
  %6 = exp %5 : f32[16,12]
  output "y" = %6
}`;
// attention's scores: A·Bᵀ (B's rows are the columns: a row of the product reads B down a column) under a softmax
const SCORES = `graph @mmt {
  %0 = input {name="a"} : f32[16,8]
  %1 = input {name="b"} : f32[16,8]
  %2 = transpose %1 {perm=[1, 0]} : f32[8,16]
  %3 = matmul %0, %2 : f32[16,16]
  %4 = reduce_max %3 {axes=[1], keepdims=true} : f32[16,1]
  %5 = broadcast %4 {shape=[16, 16]} : f32[16,16]
  %6 = sub %3, %5 : f32[16,16]
  %7 = exp %6 : f32[16,16]
  output "y" = %7
}`;
const ODD = `graph @mmo {
  %0 = input {name="a"} : f32[12,7]
  %1 = input {name="b"} : f32[7,10]
  %2 = matmul %0, %1 : f32[12,10]
  %3 = input {name="c"} : f32[7,10]
  %4 = matmul %0, %3 : f32[12,10]
  %5 = mul %2, %4 : f32[12,10]
  output "y" = %5
}`;

describe('CPU matmul: register tiles and packed panels', () => {
  it('tiles, caches, packs and vectorizes, every step exact', () => {
    const g = parseGraph(MM);
    const { steps, program } = checkedSchedule(g, plain(g), DEFAULT_CAPS);
    expect(steps.slice(0, 10)).toEqual(['tile', 'cacheWrite', 'fission', 'fission', 'reorder', 'cacheRead', 'simplify', 'hoist', 'pack', 'unroll']);
    expect(program.buffers.some((b) => b.name.startsWith('pack_') && b.size === 24 * 192)).toBe(true);
    const loops = [...walk(program.kernels[0]!.body)].filter((s) => s.k === 'for');
    // wasm's 4 x 8 register tile: rows unrolled, columns in vector lanes (the tanh epilogue's too: math.ts's
    // f64x2 form)
    expect(new Set(loops.filter((l) => l.kind === 'unroll').map((l) => l.extent))).toEqual(new Set([4]));
    expect(new Set(loops.filter((l) => l.kind === 'vector').map((l) => l.extent))).toEqual(new Set([8]));
  });
});

describe('CPU conv micro-kernel', () => {
  // padding 0: every tap reads the input, so lower.ts emits no tap condition (the update is `acc + x*w`, no select):
  // the recipe must still take it (it did not, and the seed CNN on llvm ran 10x slower)
  it.each([[1, 1], [2, 1], [1, 0]])('groups %i, padding %i: taps hoisted out of the channel lanes, every step exact', (groups, pad) => {
    const out = pad ? [2, 6, 8, 16] : [2, 4, 6, 16];
    const g = parseGraph(`graph @conv {
  %0 = input {name="x"} : f32[2,6,8,4]
  %1 = input {name="k"} : f32[3,3,${4 / groups},16]
  %2 = conv %0, %1 {dilation=[1, 1], groups=${groups}, lhsDilation=[1, 1], padding=[[${pad}, ${pad}], [${pad}, ${pad}]], strides=[1, 1]} : f32[${out}]
  %3 = max %2, %2 : f32[${out}]
  output "y" = %3
}`);
    for (const caps of [DEFAULT_CAPS, LLVM_CAPS]) {
      const { steps, program } = checkedSchedule(g, plain(g), caps);
      expect(steps).toContain('cacheRead');
      // per tap: the input read once per row of the tile, outside the vector lanes
      const lanes = [...walk(program.kernels[0]!.body)].filter((s): s is Extract<Stmt, { k: 'for' }> => s.k === 'for' && s.kind === 'vector');
      expect(lanes.every((l) => !l.body.some((s) => s.k === 'decl' && s.init.k === 'load' && s.init.buf === 'in_x'))).toBe(true);
    }
  });
});

describe('row caches', () => {
  it('two matmuls of a plain nest accumulate their rows in i-k-j order, R rows at a time on a CPU', () => {
    const g = parseGraph(ODD);
    const cpu = checkedSchedule(g, plain(g), DEFAULT_CAPS).program;
    expect(cpu.kernels[0]!.body.filter((s) => s.k === 'local')).toHaveLength(0);
    const locals = [...walk(cpu.kernels[0]!.body)].filter((s) => s.k === 'local');
    expect(locals.map((l) => (l as { size: number }).size)).toEqual([20, 20]);
    // on a GPU one row at a time (each thread a row)
    const gpu = checkedSchedule(g, plain(g), CUDA_CAPS).program;
    expect([...walk(gpu.kernels[0]!.body)].filter((s) => s.k === 'local').map((l) => (l as { size: number }).size)).toEqual([10, 10]);
  });
  it('a matmul under a softmax accumulates into its row cache', () => {
    const g = parseGraph(SOFTMAX);
    const text = printProgram(checkedSchedule(g, plain(g), DEFAULT_CAPS).program);
    expect(text).toMatch(/for k\d+ in 0..8 \{\n\s+for m\d+ in 0..\d unroll \{\n\s+for r\d+ in 0..12 vector/);
  });
  it('A·Bᵀ: the R rows read B\'s column once per k into registers, and each row is vector lanes (not R x 16 unrolled scalars)', () => {
    const g = parseGraph(SCORES);
    const text = printProgram(checkedSchedule(g, plain(g), CAPS.llvm!).program);
    // one gather of the row per k (16 strided loads), then the rows' products as vectors
    expect(text).toMatch(/for k\d+ in 0..8 \{\n\s+local (b\d+): f32\[16\] register\n\s+for c\d+ in 0..16 unroll \{\n\s+decl v\d+: f32 = in_b\[c\d+ \* 8 \+ k\d+\]\n\s+\1\[c\d+\] = v\d+\n\s+\}\n\s+for m\d+ in 0..\d unroll \{\n\s+for r\d+ in 0..16 vector/);
    // a target with no vectors for it keeps the row loop as it was (nothing cached)
    expect(printProgram(checkedSchedule(g, plain(g), CAPS.plain!).program)).not.toMatch(/local b\d+/);
  });
});

describe('every recipe on random graphs', () => {
  it.each([1, 2, 3, 5, 8, 13, 21, 34, 55, 89])('seed %i', (seed) => {
    for (const g of [randomGraph(seed).graph, randomGraph(seed, { extended: true }).graph]) {
      for (const caps of Object.values(CAPS)) checkedSchedule(g, plain(g), caps);
    }
  });
});
