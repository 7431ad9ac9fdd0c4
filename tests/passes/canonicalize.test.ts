// The graph passes as before/after IR text: one case per canonicalization rule, the fixed point, CSE, DCE,
// the verifier after every pass, and the interpreter's results unchanged by canonicalization.
import { describe, expect, it } from 'vitest';
import { Builder, type Graph, type Node, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { printGraph } from '../../ir/printer.js';
import { verify } from '../../ir/verifier.js';
import { RULES, canonicalize } from '../../passes/canonicalize.js';
import { dce } from '../../passes/dce.js';
import { GRAPH_PASSES } from '../../driver/pipeline.js';
import { rewriteToFixedPoint } from '../../passes/rewrite.js';
import { randomBindings, randomGraph } from './random_graphs.js';

/** Graph text without the common indentation of a template literal, ending in one newline. */
function ir(text: string): string {
  const lines = text.replace(/^\n/, '').trimEnd().split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n') + '\n';
}

/** Parses `before`, runs the pass, verifies, and returns the printed result. */
function run(pass: (g: Graph) => Graph, before: string): string {
  return printGraph(verify(pass(parseGraph(ir(before)))));
}

/** Asserts the interpreter gives bit-identical outputs and updates for a and b on random data. */
function expectSameResults(a: Graph, b: Graph, seed = 1): void {
  const [inputs, params] = randomBindings(a, seed);
  const ra = interpret(a, inputs, params), rb = interpret(b, inputs, params);
  for (const [name, v] of ra.outputs) expect([...rb.outputs.get(name)!.data], `output ${name}`).toEqual([...v.data]);
  for (const [name, v] of ra.updates) expect([...rb.updates.get(name)!.data], `update ${name}`).toEqual([...v.data]);
}

/** One before/after case per rule of RULES, keyed by the rule's doc string. */
const CASES: Record<string, { before: string; after: string }> = {
  'x*1 -> x, 1*x -> x': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = const {value=[1]} : f32[2,3]
        %2 = mul %0, %1 : f32[2,3]
        %3 = mul %1, %0 : f32[2,3]
        %4 = const {value=[2]} : f32[2,3]
        %5 = mul %0, %4 : f32[2,3]
        output "a" = %2
        output "b" = %3
        output "c" = %5
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = const {value=[2]} : f32[2,3]
        %2 = mul %0, %1 : f32[2,3]
        output "a" = %0
        output "b" = %0
        output "c" = %2
      }`,
  },
  'x+(-0) -> x, (-0)+x -> x (x+0 -> x on integers only)': {
    // a float x + (+0) stays: (-0) + (+0) is +0
    before: `
      graph @g {
        %0 = input {name="x"} : i32[4]
        %1 = const {value=[0]} : i32[4]
        %2 = add %0, %1 : i32[4]
        %3 = add %1, %2 : i32[4]
        %4 = input {name="y"} : f32[]
        %5 = const {value=[-0]} : f32[]
        %6 = add %4, %5 : f32[]
        %7 = add %5, %6 : f32[]
        %8 = const {value=[0]} : f32[]
        %9 = add %4, %8 : f32[]
        %10 = add %8, %4 : f32[]
        output "a" = %3
        output "b" = %7
        output "c" = %9
        output "d" = %10
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : i32[4]
        %1 = input {name="y"} : f32[]
        %2 = const {value=[0]} : f32[]
        %3 = add %1, %2 : f32[]
        %4 = add %2, %1 : f32[]
        output "a" = %0
        output "b" = %1
        output "c" = %3
        output "d" = %4
      }`,
  },
  'x-0 -> x (x-(-0) -> x on integers only)': {
    // 0 - x is a negation, not x: it stays; so does a float x - (-0), which is x + 0
    before: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = const {value=[0]} : f32[3]
        %2 = sub %0, %1 : f32[3]
        %3 = sub %1, %0 : f32[3]
        %4 = const {value=[-0]} : f32[3]
        %5 = sub %0, %4 : f32[3]
        %6 = input {name="i"} : i32[3]
        %7 = const {value=[0]} : i32[3]
        %8 = sub %6, %7 : i32[3]
        output "a" = %2
        output "b" = %3
        output "c" = %5
        output "d" = %8
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = input {name="i"} : i32[3]
        %2 = const {value=[0]} : f32[3]
        %3 = sub %2, %0 : f32[3]
        %4 = const {value=[-0]} : f32[3]
        %5 = sub %0, %4 : f32[3]
        output "a" = %0
        output "b" = %3
        output "c" = %5
        output "d" = %1
      }`,
  },
  'x/1 -> x': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = const {value=[1]} : f32[3]
        %2 = div %0, %1 : f32[3]
        %3 = div %1, %0 : f32[3]
        output "a" = %2
        output "b" = %3
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = const {value=[1]} : f32[3]
        %2 = div %1, %0 : f32[3]
        output "a" = %0
        output "b" = %2
      }`,
  },
  '-(-x) -> x': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = neg %0 : f32[3]
        %2 = neg %1 : f32[3]
        %3 = neg %2 : f32[3]
        output "a" = %2
        output "b" = %3
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = neg %0 : f32[3]
        output "a" = %0
        output "b" = %1
      }`,
  },
  '!!x -> x': {
    before: `
      graph @g {
        %0 = input {name="p"} : bool[2]
        %1 = not %0 : bool[2]
        %2 = not %1 : bool[2]
        %3 = and %2, %1 : bool[2]
        output "a" = %3
      }`,
    after: `
      graph @g {
        %0 = input {name="p"} : bool[2]
        %1 = not %0 : bool[2]
        %2 = and %0, %1 : bool[2]
        output "a" = %2
      }`,
  },
  'select(c, x, x) -> x': {
    before: `
      graph @g {
        %0 = input {name="c"} : bool[2]
        %1 = input {name="x"} : f32[2]
        %2 = input {name="y"} : f32[2]
        %3 = select %0, %1, %1 : f32[2]
        %4 = select %0, %1, %2 : f32[2]
        output "a" = %3
        output "b" = %4
      }`,
    after: `
      graph @g {
        %0 = input {name="c"} : bool[2]
        %1 = input {name="x"} : f32[2]
        %2 = input {name="y"} : f32[2]
        %3 = select %0, %1, %2 : f32[2]
        output "a" = %1
        output "b" = %3
      }`,
  },
  'cast(x: T) to T -> x': {
    // a round trip through another dtype is not the identity (truncation): it stays
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2]
        %1 = cast %0 {dtype="float32"} : f32[2]
        %2 = cast %0 {dtype="int32"} : i32[2]
        %3 = cast %2 {dtype="float32"} : f32[2]
        output "a" = %1
        output "b" = %3
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2]
        %1 = cast %0 {dtype="int32"} : i32[2]
        %2 = cast %1 {dtype="float32"} : f32[2]
        output "a" = %0
        output "b" = %2
      }`,
  },
  'reshape(x) to its own shape -> x': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = reshape %0 {shape=[2, 3]} : f32[2,3]
        %2 = exp %1 : f32[2,3]
        output "a" = %2
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = exp %0 : f32[2,3]
        output "a" = %1
      }`,
  },
  'reshape(reshape(x)) -> reshape(x)': {
    // a chain back to the original shape disappears (the identity rule then fires on the merged reshape)
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = reshape %0 {shape=[6]} : f32[6]
        %2 = reshape %1 {shape=[3,1,2]} : f32[3,1,2]
        %3 = reshape %2 {shape=[3,2]} : f32[3,2]
        %4 = reshape %1 {shape=[2,3]} : f32[2,3]
        output "a" = %3
        output "b" = %4
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = reshape %0 {shape=[3, 2]} : f32[3,2]
        output "a" = %1
        output "b" = %0
      }`,
  },
  'transpose(x, identity) -> x': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3,4]
        %1 = transpose %0 {perm=[0, 1, 2]} : f32[2,3,4]
        output "a" = %1
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3,4]
        output "a" = %0
      }`,
  },
  'transpose(transpose(x, p), q) -> transpose(x, p[q])': {
    // [1,2,0] twice is [2,0,1]; three times is the identity
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3,4]
        %1 = transpose %0 {perm=[1, 2, 0]} : f32[3,4,2]
        %2 = transpose %1 {perm=[1, 2, 0]} : f32[4,2,3]
        %3 = transpose %2 {perm=[1, 2, 0]} : f32[2,3,4]
        output "a" = %2
        output "b" = %3
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3,4]
        %1 = transpose %0 {perm=[2, 0, 1]} : f32[4,2,3]
        output "a" = %1
        output "b" = %0
      }`,
  },
  'broadcast(x) to its own shape -> x': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = broadcast %0 {shape=[2, 3]} : f32[2,3]
        output "a" = %1
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        output "a" = %0
      }`,
  },
  'broadcast(broadcast(x)) -> broadcast(x)': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = broadcast %0 {shape=[1, 3]} : f32[1,3]
        %2 = broadcast %1 {shape=[4, 2, 3]} : f32[4,2,3]
        output "a" = %2
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[3]
        %1 = broadcast %0 {shape=[4, 2, 3]} : f32[4,2,3]
        output "a" = %1
      }`,
  },
  'broadcast(splat const c) -> splat const c of the larger shape': {
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = const {value=[2.5]} : f32[]
        %2 = broadcast %1 {shape=[2, 3]} : f32[2,3]
        %3 = mul %0, %2 : f32[2,3]
        output "a" = %3
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = const {value=[2.5]} : f32[2,3]
        %2 = mul %0, %1 : f32[2,3]
        output "a" = %2
      }`,
  },
  'reshape(splat const c) -> splat const c': {
    before: `
      graph @g {
        %0 = input {name="x"} : i32[2,3]
        %1 = const {value=[7]} : i32[6]
        %2 = reshape %1 {shape=[2, 3]} : i32[2,3]
        %3 = max %0, %2 : i32[2,3]
        output "a" = %3
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : i32[2,3]
        %1 = const {value=[7]} : i32[2,3]
        %2 = max %0, %1 : i32[2,3]
        output "a" = %2
      }`,
  },
  'reduce(x, axes) -> reduce(x, sorted axes)': {
    // the two reductions are one value once their axes are in one order
    before: `
      graph @g {
        %0 = input {name="x"} : f32[2,3,4]
        %1 = reduce_sum %0 {axes=[2, 0], keepdims=true} : f32[1,3,1]
        %2 = reduce_sum %0 {axes=[0, 2], keepdims=true} : f32[1,3,1]
        %3 = add %1, %2 : f32[1,3,1]
        %4 = reduce_max %0 {axes=[1, 0]} : f32[4]
        output "a" = %3
        output "b" = %4
      }`,
    after: `
      graph @g {
        %0 = input {name="x"} : f32[2,3,4]
        %1 = reduce_sum %0 {axes=[0, 2], keepdims=true} : f32[1,3,1]
        %2 = add %1, %1 : f32[1,3,1]
        %3 = reduce_max %0 {axes=[0, 1]} : f32[4]
        output "a" = %2
        output "b" = %3
      }`,
  },
  'op(constants) -> constant (folded by the interpreter; splats stay splats)': {
    // full constants fold up to FOLD_LIMIT elements; splat-only elementwise ops fold at any size, staying splats;
    // a broadcast of a non-uniform constant to 8192 elements stays
    before: `
      graph @g {
        %0 = const {value=[1, 2, 3]} : f32[3]
        %1 = const {value=[10, 20, 30]} : f32[3]
        %2 = add %0, %1 : f32[3]
        %3 = const {value=[1, 2, 3, 4]} : f32[2,2]
        %4 = reduce_sum %3 {axes=[1]} : f32[2]
        %5 = const {value=[0]} : f32[1000,1000]
        %6 = exp %5 : f32[1000,1000]
        %7 = const {value=[1.5, -2.7]} : f32[2]
        %8 = cast %7 {dtype="int32"} : i32[2]
        %9 = const {value=[1]} : f32[2]
        %10 = lt %9, %7 : bool[2]
        %11 = const {value=[1, 2]} : f32[2]
        %12 = broadcast %11 {shape=[4096, 2]} : f32[4096,2]
        %13 = transpose %3 {perm=[1, 0]} : f32[2,2]
        output "a" = %2
        output "b" = %4
        output "c" = %6
        output "d" = %8
        output "e" = %10
        output "f" = %12
        output "g" = %13
      }`,
    after: `
      graph @g {
        %0 = const {value=[11, 22, 33]} : f32[3]
        %1 = const {value=[3, 7]} : f32[2]
        %2 = const {value=[1]} : f32[1000,1000]
        %3 = const {value=[1, -2]} : i32[2]
        %4 = const {value=[1, 0]} : bool[2]
        %5 = const {value=[1, 2]} : f32[2]
        %6 = broadcast %5 {shape=[4096, 2]} : f32[4096,2]
        %7 = const {value=[1, 3, 2, 4]} : f32[2,2]
        output "a" = %0
        output "b" = %1
        output "c" = %2
        output "d" = %3
        output "e" = %4
        output "f" = %6
        output "g" = %7
      }`,
  },
};

describe('canonicalize: one before/after case per rewrite rule', () => {
  it('has a case for every rule of RULES, and no other', () => {
    expect(Object.keys(CASES).sort()).toEqual(RULES.map((r) => r.doc).sort());
  });

  for (const [doc, { before, after }] of Object.entries(CASES)) {
    it(doc, () => {
      expect(run(canonicalize, before)).toBe(ir(after));
      // the result is a fixed point, and the rule alone (with the others it enables) does the rewrite
      expect(run(canonicalize, after)).toBe(ir(after));
      const g = parseGraph(ir(before));
      expectSameResults(g, canonicalize(g));
    });
  }

  it('keeps the sign of a zero sum: x+0, 0+x and x-(-0) of x = -0 are +0 (IEEE 754, NumPy), x+(-0) and x-0 are x', () => {
    const g = parseGraph(ir(`
      graph @g {
        %0 = input {name="x"} : f32[4]
        %1 = const {value=[0]} : f32[4]
        %2 = const {value=[-0]} : f32[4]
        %3 = add %0, %1 : f32[4]
        %4 = add %1, %0 : f32[4]
        %5 = sub %0, %2 : f32[4]
        %6 = add %0, %2 : f32[4]
        %7 = sub %0, %1 : f32[4]
        output "a" = %3
        output "b" = %4
        output "c" = %5
        output "d" = %6
        output "e" = %7
      }`));
    const x = { x: Float32Array.of(-0, 0, -1.5, NaN) };
    const want = { a: [0, 0, -1.5, NaN], b: [0, 0, -1.5, NaN], c: [0, 0, -1.5, NaN], d: [-0, 0, -1.5, NaN], e: [-0, 0, -1.5, NaN] };
    for (const h of [g, canonicalize(g)]) {
      const got = Object.fromEntries([...interpret(h, x).outputs].map(([k, v]) => [k, [...v.data]]));
      expect(got).toEqual(want); // toEqual tells -0 from +0
    }
  });
});

describe('canonicalize runs its rules to a fixed point', () => {
  it('collapses a chain that mixes rules: movement round trips, double negation, identities, folded constants', () => {
    const before = `
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = const {value=[2]} : f32[]
        %2 = const {value=[0.5]} : f32[]
        %3 = mul %1, %2 : f32[]
        %4 = broadcast %3 {shape=[2, 3]} : f32[2,3]
        %5 = neg %0 : f32[2,3]
        %6 = neg %5 : f32[2,3]
        %7 = mul %6, %4 : f32[2,3]
        %8 = transpose %7 {perm=[1, 0]} : f32[3,2]
        %9 = reshape %8 {shape=[6]} : f32[6]
        %10 = reshape %9 {shape=[3, 2]} : f32[3,2]
        %11 = transpose %10 {perm=[1, 0]} : f32[2,3]
        %12 = const {value=[-0]} : f32[2,3]
        %13 = add %11, %12 : f32[2,3]
        %14 = cast %13 {dtype="float32"} : f32[2,3]
        %15 = exp %14 : f32[2,3]
        output "y" = %15
      }`;
    expect(run(canonicalize, before)).toBe(ir(`
      graph @g {
        %0 = input {name="x"} : f32[2,3]
        %1 = exp %0 : f32[2,3]
        output "y" = %1
      }`));
  });

  it('runs further rounds while a rule leaves rewritable nodes below the one it returns', () => {
    // exp(a + b) -> exp(a) * exp(b) builds new exp nodes that the same round does not revisit:
    // a sum of n terms needs n - 1 rounds
    const expOfSum = { op: 'exp' as const, doc: 'exp(a+b) -> exp(a)*exp(b)', rewrite: (n: Node, b: Builder) => {
      const s = n.src[0]!;
      return s.op === 'add' ? b.emit('mul', [b.emit('exp', [s.src[0]!]), b.emit('exp', [s.src[1]!])]) : undefined;
    } };
    const g = parseGraph(ir(`
      graph @g {
        %0 = input {name="a"} : f32[2]
        %1 = input {name="b"} : f32[2]
        %2 = input {name="c"} : f32[2]
        %3 = add %0, %1 : f32[2]
        %4 = add %3, %2 : f32[2]
        %5 = exp %4 : f32[2]
        output "y" = %5
      }`));
    expect(printGraph(rewriteToFixedPoint(g, [expOfSum], 1))).toBe(ir(`
      graph @g {
        %0 = input {name="a"} : f32[2]
        %1 = input {name="b"} : f32[2]
        %2 = input {name="c"} : f32[2]
        %3 = add %0, %1 : f32[2]
        %4 = exp %3 : f32[2]
        %5 = exp %2 : f32[2]
        %6 = mul %4, %5 : f32[2]
        output "y" = %6
      }`));
    expect(printGraph(rewriteToFixedPoint(g, [expOfSum]))).toBe(ir(`
      graph @g {
        %0 = input {name="a"} : f32[2]
        %1 = input {name="b"} : f32[2]
        %2 = input {name="c"} : f32[2]
        %3 = exp %0 : f32[2]
        %4 = exp %1 : f32[2]
        %5 = mul %3, %4 : f32[2]
        %6 = exp %2 : f32[2]
        %7 = mul %5, %6 : f32[2]
        output "y" = %7
      }`));
  });

  it('keeps params, updates and unused inputs (the signature), rewriting inside update values', () => {
    const before = `
      graph @g {
        %0 = input {name="x"} : f32[2]
        %1 = input {name="unused"} : i32[]
        %2 = param {name="w"} : f32[2]
        %3 = const {value=[1]} : f32[2]
        %4 = mul %0, %3 : f32[2]
        %5 = sub %2, %4 : f32[2]
        update %2 = %5
      }`;
    expect(run(canonicalize, before)).toBe(ir(`
      graph @g {
        %0 = input {name="x"} : f32[2]
        %1 = input {name="unused"} : i32[]
        %2 = param {name="w"} : f32[2]
        %3 = sub %2, %0 : f32[2]
        update %2 = %3
      }`));
  });
});

/** A graph with two structurally equal nodes, built without the (hash-consing) Builder. */
function withDuplicates(): Graph {
  const type = { dtype: 'float32' as const, shape: [2] };
  const x: Node = { id: 0, op: 'input', type, src: [], attrs: { name: 'x' } };
  const a: Node = { id: 1, op: 'exp', type, src: [x], attrs: {} };
  const b: Node = { id: 2, op: 'exp', type, src: [x], attrs: {} };
  const y: Node = { id: 3, op: 'sub', type, src: [a, b], attrs: {} };
  return { name: 'g', inputs: [x], params: [], outputs: [{ name: 'y', node: y }, { name: 'z', node: b }], updates: [] };
}

describe('dce', () => {
  it('merges structurally equal nodes of a graph not made by one Builder', () => {
    const g = withDuplicates();
    expect(printGraph(g)).toBe(ir(`
      graph @g {
        %0 = input {name="x"} : f32[2]
        %1 = exp %0 : f32[2]
        %2 = exp %0 : f32[2]
        %3 = sub %1, %2 : f32[2]
        output "y" = %3
        output "z" = %2
      }`));
    expect(duplicates(g)).toEqual([' = exp %0 : f32[2]']);
    expect(printGraph(verify(dce(g)))).toBe(ir(`
      graph @g {
        %0 = input {name="x"} : f32[2]
        %1 = exp %0 : f32[2]
        %2 = sub %1, %1 : f32[2]
        output "y" = %2
        output "z" = %1
      }`));
  });

  it('drops nodes no output or update reaches, keeping inputs and params', () => {
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [2] });
    b.param('frozen', { dtype: 'float32', shape: [3] });
    const dead = b.emit('tanh', [b.emit('exp', [x])]);
    const y = b.emit('neg', [x]);
    const g = b.finish('g', [{ name: 'y', node: y }]);
    // the builder made the dead nodes (ids 2 and 3) before y; the pass's rebuild never makes them
    expect(y.id).toBeGreaterThan(dead.id);
    const h = verify(dce(g));
    const nodes = topoSort(h);
    expect(nodes.map((n) => n.id).sort()).toEqual([0, 1, 2]);
    expect(printGraph(h)).toBe(ir(`
      graph @g {
        %0 = input {name="x"} : f32[2]
        %1 = param {name="frozen"} : f32[3]
        %2 = neg %0 : f32[2]
        output "y" = %2
      }`));
  });
});

/** Nodes of g that print the same as an earlier one (op, operands, attributes, type): what CSE would merge. */
function duplicates(g: Graph): string[] {
  const seen = new Set<string>();
  return printGraph(g).split('\n').filter((l) => l.startsWith('  %')).map((l) => l.slice(l.indexOf(' = ')))
    .filter((rhs) => seen.has(rhs) || !seen.add(rhs));
}

describe('the graph passes on random graphs', () => {
  it.each(Array.from({ length: 100 }, (_, i) => i))('random graph %i: every pass verifies and canonicalize keeps the results', (seed) => {
    const g = randomGraph(seed).graph;
    let h = g;
    for (const p of GRAPH_PASSES) {
      h = verify(p.run(h));
      // each pass is idempotent on its own output, and leaves no two equal nodes (every pass rebuilds through the
      // interning builder: why there is no cse pass)
      expect(printGraph(p.run(h)), `${p.name} twice`).toBe(printGraph(h));
      expect(duplicates(h), p.name).toEqual([]);
    }
    expectSameResults(g, h, seed);
  });
});
