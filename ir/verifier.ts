// Verifier: per-op rules over a whole graph, run after every pass in tests.
import { type Graph, type Node, nodeName } from './graph.js';
import { GroupOp, attrsOf, checkAttrs, inferType } from './ops.js';
import { formatType, isDType, sizeOf, typesEqual } from './types.js';

export class VerifyError extends Error {
  override name = 'VerifyError';
  constructor(readonly problems: string[]) {
    super(`graph is malformed:\n  ${problems.join('\n  ')}`);
  }
}

/** Returns every problem found (empty when the graph is well formed). */
export function verifyProblems(g: Graph): string[] {
  const problems: string[] = [];
  const declared = new Set<Node>([...g.inputs, ...g.params]);
  const state = new Map<Node, 'visiting' | 'done'>();
  const check = (n: Node): void => {
    const where = `%${n.id} ${n.op}`;
    if (!GroupOp.Leaf.has(n.op) && n.src.length === 0 && n.op !== 'concat') problems.push(`${where}: has no operands`);
    if (GroupOp.Leaf.has(n.op) && n.src.length) problems.push(`${where}: a leaf takes no operands`);
    if (!isDType(n.type.dtype) || n.type.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      problems.push(`${where}: bad type ${JSON.stringify(n.type)}`);
      return;
    }
    if (GroupOp.Leaf.has(n.op)) {
      // a leaf's attributes are not checked by type inference: check their kinds here, then what they say
      try {
        checkAttrs(n.op, n.attrs);
      } catch (e) {
        problems.push(`${where}: ${(e as Error).message}`);
        return;
      }
    }
    switch (n.op) {
      case 'input': case 'param':
        if (!declared.has(n)) problems.push(`${where} '${nodeName(n)}': used but not declared in the graph's ${n.op}s`);
        return;
      case 'const': {
        const v = attrsOf(n, n.op).value;
        if (v.length !== 1 && v.length !== sizeOf(n.type.shape)) problems.push(`${where}: value does not fill ${formatType(n.type)}`);
        return;
      }
      case 'iota': {
        const a = attrsOf(n, n.op).axis;
        if (a < 0 || a >= n.type.shape.length || n.type.dtype !== 'int32') problems.push(`${where}: bad axis or dtype`);
        return;
      }
      default:
        try {
          const t = inferType(n.op, n.src.map((s) => s.type), n.attrs);
          if (!typesEqual(t, n.type)) problems.push(`${where}: type is ${formatType(n.type)} but its operands give ${formatType(t)}`);
        } catch (e) {
          problems.push(`${where}: ${(e as Error).message}`);
        }
    }
  };
  const visit = (root: Node): void => {
    const stack: [Node, number][] = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [n, i] = top;
      if (i === 0) {
        if (state.get(n) === 'done') { stack.pop(); continue; }
        if (state.get(n) === 'visiting') { problems.push(`%${n.id} ${n.op}: is part of a cycle`); stack.pop(); continue; }
        state.set(n, 'visiting');
      }
      if (i < n.src.length) {
        top[1]++;
        const s = n.src[i]!;
        if (state.get(s) === 'visiting') problems.push(`%${n.id} ${n.op}: is part of a cycle`);
        else if (state.get(s) !== 'done') stack.push([s, 0]);
      } else {
        state.set(n, 'done');
        check(n);
        stack.pop();
      }
    }
  };
  const names = (kind: string, list: readonly string[]): void => {
    const seen = new Set<string>();
    for (const x of list) {
      if (seen.has(x)) problems.push(`${kind} name '${x}' is used twice`);
      seen.add(x);
    }
  };
  for (const n of g.inputs) if (n.op !== 'input') problems.push(`inputs: %${n.id} is a ${n.op}, not an input`);
  for (const n of g.params) if (n.op !== 'param') problems.push(`params: %${n.id} is a ${n.op}, not a param`);
  names('input', g.inputs.map((n) => nodeName(n)));
  names('param', g.params.map((n) => nodeName(n)));
  names('output', g.outputs.map((o) => o.name));
  for (const u of g.updates) {
    if (!g.params.includes(u.param)) problems.push(`update: %${u.param.id} is not one of the graph's params`);
    else if (!typesEqual(u.param.type, u.value.type)) problems.push(`update of '${nodeName(u.param)}': value ${formatType(u.value.type)} does not match ${formatType(u.param.type)}`);
  }
  names('update', g.updates.map((u) => nodeName(u.param)));
  for (const r of [...g.inputs, ...g.params, ...g.outputs.map((o) => o.node), ...g.updates.map((u) => u.value)]) visit(r);
  return problems;
}

/** Throws a VerifyError listing every problem when the graph is malformed. */
export function verify(g: Graph): Graph {
  const p = verifyProblems(g);
  if (p.length) throw new VerifyError(p);
  return g;
}
