// The compiler pipeline: the ordered, named list of passes from a traced graph to a scheduled, memory-planned program.
import type { Graph } from '../ir/graph.js';
import { printGraph } from '../ir/printer.js';
import { verify } from '../ir/verifier.js';
import type { Program } from '../codegen/loop/ir.js';
import { lower } from '../codegen/loop/lower.js';
import { type MemoryPlan, planMemory } from '../codegen/loop/memplan.js';
import { printProgram } from '../codegen/loop/printer.js';
import { DEFAULT_CAPS, type TargetCaps, schedule } from '../codegen/loop/schedule.js';
import { canonicalize } from './canonicalize.js';
import { cse } from './cse.js';
import { dce } from './dce.js';
import { type FusionPlan, fuse } from './fuse.js';

/** Graph-to-graph passes, in order. (Autodiff and the optimizer update run while tracing the training step.) */
export const GRAPH_PASSES: readonly { name: string; description: string; run: (g: Graph) => Graph }[] = [
  { name: 'canonicalize', description: 'algebraic rewrite rules and constant folding to a fixed point', run: canonicalize },
  { name: 'cse', description: 'merge structurally equal nodes', run: cse },
  { name: 'dce', description: 'drop values no output or update uses', run: dce },
];

/** Passes after the graph ones: fusion, lowering to loop IR, scheduling, memory planning. */
export const LOOP_PASSES = ['fuse', 'lower', 'schedule', 'memplan'] as const;

export const PASS_NAMES: readonly string[] = [...GRAPH_PASSES.map((p) => p.name), ...LOOP_PASSES];

export interface PipelineOptions {
  caps?: TargetCaps;
  /** Pass name after which to report the IR through `dump`. */
  dumpAfter?: string;
  dump?: (text: string) => void;
  /** Verify the graph after every graph pass (tests turn this on). */
  verifyEach?: boolean;
}

export interface Compiled {
  readonly graph: Graph;
  readonly plan: FusionPlan;
  readonly program: Program;
  readonly memory: MemoryPlan;
}

/** One line per kernel with the ops it fused and, per nest, what it writes. */
export function describePlan(plan: FusionPlan): string {
  return plan.kernels.map((k) => `${k.name}: ${k.nests.length} nest(s) [${k.ops.join(', ')}] writes ${k.nests.flatMap((n) => n.roots.map((r) => `%${r.id}`)).join(', ')}`).join('\n') + '\n';
}

export function runPipeline(input: Graph, options: PipelineOptions = {}): Compiled {
  if (options.dumpAfter && !PASS_NAMES.includes(options.dumpAfter)) {
    throw new Error(`unknown pass '${options.dumpAfter}'; passes: ${PASS_NAMES.join(', ')}`);
  }
  const dump = (name: string, text: () => string) => {
    if (options.dumpAfter === name) (options.dump ?? ((t) => process.stdout.write(t)))(text());
  };
  let g = input;
  for (const p of GRAPH_PASSES) {
    g = p.run(g);
    if (options.verifyEach) verify(g);
    dump(p.name, () => printGraph(g));
  }
  const plan = fuse(g);
  dump('fuse', () => describePlan(plan));
  const lowered = lower(plan, { name: g.name });
  dump('lower', () => printProgram(lowered));
  const program = schedule(lowered, options.caps ?? DEFAULT_CAPS);
  dump('schedule', () => printProgram(program));
  const memory = planMemory(program);
  dump('memplan', () => `arena ${memory.arenaBytes} bytes (unshared ${memory.unsharedBytes})\n${[...memory.offsets].map(([b, o]) => `  ${b} @ ${o}`).join('\n')}\n`);
  return { graph: g, plan, program, memory };
}
