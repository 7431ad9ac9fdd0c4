// The compiler pipeline: the ordered, named list of stages from a traced graph (graph passes) to scheduled, memory-planned loop IR.
import { type Graph, type Node, topoSort } from '../ir/graph.js';
import { printGraph } from '../ir/printer.js';
import { verify } from '../ir/verifier.js';
import type { Program } from '../codegen/loop/ir.js';
import { lower } from '../codegen/loop/lower.js';
import { type MemoryPlan, planMemory, updateInPlace } from '../codegen/loop/memplan.js';
import { printKernel, printProgram } from '../codegen/loop/printer.js';
import { DEFAULT_CAPS, type TargetCaps } from '../codegen/loop/schedule.js';
import { SCHEDULE_STEPS, type Trace, schedule } from '../codegen/loop/schedules/index.js';
import { fuseLaunches } from '../codegen/loop/schedules/horizontal.js';
import { legalize } from '../codegen/loop/legalize.js';
import { simplify } from '../codegen/loop/simplify.js';
import { canonicalize } from '../passes/canonicalize.js';
import { dce } from '../passes/dce.js';
import { removeEmpty } from '../passes/empty.js';
import { type FusionPlan, fuse } from '../passes/fuse.js';
import { reductionTrees } from '../codegen/loop/reduction_trees.js';
import { describeLaunches } from '../codegen/loop/gpu.js';
import { timed } from './timings.js';

/** Graph-to-graph passes, in order. (Autodiff and the optimizer update run while tracing the training step.) */
export const GRAPH_PASSES: readonly { name: string; description: string; run: (g: Graph) => Graph }[] = [
  { name: 'canonicalize', description: 'algebraic rewrite rules and constant folding to a fixed point', run: canonicalize },
  { name: 'empty', description: 'replace computations on empty tensors by the constants they equal', run: removeEmpty },
  { name: 'dce', description: 'drop values no output or update uses, merge structurally equal ones', run: dce },
];

/**
 * After the graph passes: fusion, lowering to loop IR, index simplification, scheduling (each schedule primitive a
 * stage too: `schedule:<name>` shows the kernel after each application of it), legalize (the target's integer and
 * float semantics as its primitive ops: what the renderers render), memory planning.
 *
 * legalize runs after scheduling, not before: recipes read the ops it rewrites (a grouped conv's channel group
 * `co // g`, the i32 min/max clamps of padded taps) and simplifyIndices folds tiled indices through `//` and `%`.
 * Legalized first, 411 of 1,715 programs of fuzz/schedule_snapshot.ts scheduled differently (the grouped conv lost
 * its micro-kernel; the transformer's model.wasm doubled). The schedule judges vector loops on their legalized
 * form (canVectorize), which is what this stage then gives the renderers.
 */
export const PASS_NAMES: readonly string[] = [...GRAPH_PASSES.map((p) => p.name), 'trees', 'fuse', 'lower', 'simplify',
  ...SCHEDULE_STEPS.map((s) => `schedule:${s}`), 'schedule', 'legalize', 'launches', 'memplan'];

export interface PipelineOptions {
  caps?: TargetCaps;
  /** Pass name after which to report the IR through `dump`. */
  dumpAfter?: string;
  dump?: (text: string) => void;
  /** Verify the graph after every graph pass (tests turn this on). */
  verifyEach?: boolean;
  /** Called after every schedule primitive's application (tests read which recipes scheduled which kernels). */
  trace?: Trace;
}

export interface Compiled {
  readonly graph: Graph;
  readonly plan: FusionPlan;
  readonly program: Program;
  readonly memory: MemoryPlan;
}

/**
 * One line per kernel with the ops it fused and, per nest, what it writes. Values are numbered as printGraph
 * numbers them, so the plan reads against the graph's text.
 */
export function describePlan(plan: FusionPlan): string {
  const num = new Map<Node, number>(topoSort(plan.graph).map((n, i) => [n, i]));
  return plan.kernels.map((k) => `${k.name}: ${k.nests.length} nest(s) [${k.ops.join(', ')}] writes ${k.nests.flatMap((n) => n.roots.map((r) => `%${num.get(r)}`)).join(', ')}`).join('\n') + '\n';
}

/** The arena size, then each placed buffer's offset. */
export function describeMemory(memory: MemoryPlan): string {
  return `arena ${memory.arenaBytes} bytes (unshared ${memory.unsharedBytes})\n${[...memory.offsets].map(([b, o]) => `  ${b} @ ${o}`).join('\n')}\n`;
}

/** Throws a one-line error naming the passes when `name` is not one of them. */
export function checkPassName(name: string): void {
  if (!PASS_NAMES.includes(name)) throw new Error(`unknown pass '${name}'; passes are ${PASS_NAMES.join(', ')}`);
}

/** What one pass left: its name and its IR as text (printed only when asked for). */
interface PassResult {
  readonly name: string;
  readonly text: () => string;
}

/** Runs the passes in order, pausing after each one with its IR; the return value is the compiled whole. */
function* passes(input: Graph, options: PipelineOptions): Generator<PassResult, Compiled> {
  let g = input;
  for (const p of GRAPH_PASSES) {
    const h = p.run(g);
    if (options.verifyEach) verify(h);
    yield { name: p.name, text: () => printGraph(h) };
    g = h;
  }
  // GPU targets: reductions as declared trees of partials (codegen/loop/reduction_trees.ts); CPU targets keep the serial order
  const gpu = options.caps?.gpu;
  if (gpu) {
    g = reductionTrees(g, gpu);
    if (options.verifyEach) verify(g);
  }
  yield { name: 'trees', text: () => printGraph(g) };
  const plan = fuse(g);
  yield { name: 'fuse', text: () => describePlan(plan) };
  const lowered = lower(plan, { name: g.name });
  yield { name: 'lower', text: () => printProgram(lowered) };
  const simplified = simplify(lowered);
  yield { name: 'simplify', text: () => printProgram(simplified) };
  const steps: PassResult[] = [], caps = options.caps ?? DEFAULT_CAPS;
  const scheduled = schedule(simplified, caps, (name, p, at) => {
    options.trace?.(name, p, at);
    steps.push({ name: `schedule:${name}`, text: () => `# ${name} (${at.recipe})\n${printKernel(p.kernels[at.kernel]!)}` });
  });
  yield* steps;
  // a GPU schedule ends with each launch's grid, block and the cost model's estimate
  yield { name: 'schedule', text: () => printProgram(scheduled) + (gpu ? describeLaunches(scheduled, gpu) : '') };
  const legal = updateInPlace(legalize(scheduled, caps.legal));
  yield { name: 'legalize', text: () => printProgram(legal) };
  // GPU: independent launches of a kernel merged into one (schedules/horizontal.ts), then the launches' estimates
  const program = gpu ? fuseLaunches(legal, gpu) : legal;
  yield { name: 'launches', text: () => printProgram(program) + (gpu ? describeLaunches(program, gpu) : '') };
  const memory = planMemory(program, { threads: caps.threads });
  yield { name: 'memplan', text: () => describeMemory(memory) };
  return { graph: g, plan, program, memory };
}

/** Runs every pass; with `dumpAfter`, hands the IR after that pass to `dump` (stdout by default). */
export function runPipeline(input: Graph, options: PipelineOptions = {}): Compiled {
  return timed('passes', () => runPasses(input, options));
}

function runPasses(input: Graph, options: PipelineOptions): Compiled {
  if (options.dumpAfter !== undefined) checkPassName(options.dumpAfter);
  const run = passes(input, options);
  for (;;) {
    const step = run.next();
    if (step.done) return step.value;
    if (step.value.name === options.dumpAfter) (options.dump ?? ((t) => process.stdout.write(t)))(step.value.text());
  }
}

/**
 * The IR after one pass, as `kiln compile --dump-after <pass>` prints it. Only the passes up to that one run,
 * so a later pass that fails on this graph does not hide the IR asked for. A schedule step gives the kernel after
 * each of its applications, or one comment line saying it was not applied.
 */
export function irAfter(input: Graph, pass: string, options: Pick<PipelineOptions, 'caps' | 'verifyEach'> = {}): string {
  checkPassName(pass);
  // a schedule step: every application of it, in order
  const texts: string[] = [], applied = new Set<string>();
  for (const step of passes(input, options)) {
    if (step.name === pass && !pass.startsWith('schedule:')) return step.text();
    if (step.name === pass) texts.push(step.text());
    else if (step.name.startsWith('schedule:')) applied.add(step.name);
    if (step.name === 'schedule' && pass.startsWith('schedule:')) {
      if (texts.length) return texts.join('\n');
      return `# ${pass.slice(9)}: not applied to this program (steps applied: ${[...applied].map((a) => a.slice(9)).join(', ') || 'none'})\n`;
    }
  }
  throw new Error(`pipeline: pass '${pass}' did not run`);
}
