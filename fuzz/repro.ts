// Fuzz reproducers: a failing graph as graph-IR text, headed by comments giving the seed of its input data.
import type { Graph } from '../ir/graph.js';
import { parseGraph } from '../ir/parser.js';
import { printGraph } from '../ir/printer.js';
import type { Failure } from './targets.js';

export interface ReproInfo {
  /** the command line that found it */
  readonly command: string;
  readonly failure: Failure;
  /** seeds randomBindings(graph, dataSeed): the inputs and param values */
  readonly dataSeed: number;
  readonly note?: string;
}

export function reproText(g: Graph, info: ReproInfo): string {
  const lines = [
    `// kiln fuzz reproducer, found by: ${info.command}`,
    ...info.failure.message.split('\n').map((l, i) => `// ${i ? '  ' : `${info.failure.kind}: `}${l}`),
    ...(info.note ? [`// ${info.note}`] : []),
    `// data seed ${info.dataSeed}`,
  ];
  return `${lines.join('\n')}\n${printGraph(g)}`;
}

/** The graph and data seed of a reproducer (graph text without a `// data seed N` line uses seed 0). */
export function parseRepro(text: string): { graph: Graph; dataSeed: number } {
  const m = /^\/\/ data seed (\d+)$/m.exec(text);
  return { graph: parseGraph(text), dataSeed: m ? Number(m[1]) : 0 };
}
