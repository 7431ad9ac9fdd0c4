// Stable text form of a graph: one SSA line per node, numbered in topological order.
import { type Graph, type Node, topoSort } from './graph.js';
import type { AttrValue } from './ops.js';
import { formatType } from './types.js';

export function formatAttr(v: AttrValue): string {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'nan';
    if (v === Infinity) return 'inf';
    if (v === -Infinity) return '-inf';
    return Object.is(v, -0) ? '-0' : String(v);
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean') return String(v);
  return `[${v.map(formatAttr).join(', ')}]`;
}

/** Prints a graph; parse(print(g)) rebuilds an equal graph and print is a fixed point. */
export function printGraph(g: Graph): string {
  const ids = new Map<Node, number>();
  const lines = [`graph @${g.name} {`];
  for (const n of topoSort(g)) {
    const id = ids.size;
    ids.set(n, id);
    const src = n.src.length ? ` ${n.src.map((s) => `%${ids.get(s)}`).join(', ')}` : '';
    const keys = Object.keys(n.attrs);
    const attrs = keys.length ? ` {${keys.map((k) => `${k}=${formatAttr(n.attrs[k]!)}`).join(', ')}}` : '';
    lines.push(`  %${id} = ${n.op}${src}${attrs} : ${formatType(n.type)}`);
  }
  for (const o of g.outputs) lines.push(`  output ${JSON.stringify(o.name)} = %${ids.get(o.node)}`);
  for (const u of g.updates) lines.push(`  update %${ids.get(u.param)} = %${ids.get(u.value)}`);
  lines.push('}');
  return lines.join('\n') + '\n';
}
