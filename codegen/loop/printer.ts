// Stable text form of loop IR: one statement per line, infix index math, deterministic for golden files.
import { DTYPE_SHORT } from '../../ir/types.js';
import type { Buffer, Expr, Kernel, Program, Stmt } from './ir.js';

/**
 * A float32 constant as the shortest decimal that reads back (through Math.fround) as the same float32,
 * always with a '.' or an exponent so it cannot be mistaken for an i32: `0.0`, `-0.0`, `0.1`, `1e-7`, `nan`, `inf`.
 */
export function formatF32(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (Object.is(v, -0)) return '-0.0';
  let s = String(v); // not a float32 (a malformed constant): print it exactly
  if (Math.fround(v) === v) {
    for (let p = 1; p <= 9; p++) {
      const t = String(Number(v.toPrecision(p)));
      if (Math.fround(Number(t)) === v) { s = t; break; }
    }
  }
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** Infix operators with their precedence (higher binds tighter); every other op prints as a call. */
const INFIX: Readonly<Record<string, readonly [string, number]>> = {
  mul: ['*', 5], div: ['/', 5], idiv: ['//', 5], mod: ['%', 5],
  add: ['+', 4], sub: ['-', 4],
  lt: ['<', 3], le: ['<=', 3], gt: ['>', 3], ge: ['>=', 3], eq: ['==', 3], ne: ['!=', 3],
};
const ATOM = 9;

function constText(e: Extract<Expr, { k: 'const' }>): string {
  if (e.t === 'f32') return formatF32(e.v);
  if (e.t === 'bool') return e.v ? 'true' : 'false';
  return String(e.v);
}

/**
 * Prints an expression. Infix operands are parenthesized by precedence, and a right operand of the same
 * precedence always is (`a - (b - c)`, `a + (b + c)`: f32 addition is not associative), as is a negative
 * constant in an infix operand (`i + (-1)`), so the text names exactly one tree.
 */
export function printExpr(e: Expr, minPrec = 0): string {
  const wrap = (s: string, prec: number): string => (prec < minPrec ? `(${s})` : s);
  switch (e.k) {
    case 'const': {
      const s = constText(e);
      return wrap(s, s.startsWith('-') ? 0 : ATOM);
    }
    case 'var': return e.name;
    // a quad: elements idx .. idx + 3 as one word
    case 'load': return e.quad ? `quad(${e.buf}[${printExpr(e.idx)}])` : `${e.buf}[${printExpr(e.idx)}]`;
    case 'unary': return `${e.op}(${printExpr(e.a)})`;
    case 'cast': return `${e.t}(${printExpr(e.a)})`;
    case 'select': return `select(${printExpr(e.c)}, ${printExpr(e.a)}, ${printExpr(e.b)})`;
    case 'philox': return `philox(${e.seed}, ${printExpr(e.counter)}, ${printExpr(e.index)})`;
    case 'binary': {
      const infix = INFIX[e.op];
      if (!infix) return `${e.op}(${printExpr(e.a)}, ${printExpr(e.b)})`;
      const [sym, prec] = infix;
      const leftPrec = prec === 3 ? prec + 1 : prec; // comparisons do not chain
      return wrap(`${printExpr(e.a, leftPrec)} ${sym} ${printExpr(e.b, prec + 1)}`, prec);
    }
    default: {
      const never: never = e;
      return `<bad expr ${JSON.stringify(never)}>`;
    }
  }
}

/** The first line of a statement without indentation (a loop's header), used by error messages. */
export function printStmtHead(s: Stmt): string {
  switch (s.k) {
    case 'for': return `for ${s.v} in 0..${s.extent}${s.kind === 'serial' ? '' : ` ${s.kind}`} {`;
    case 'decl': return `decl ${s.name}: ${s.t} = ${printExpr(s.init)}`;
    case 'assign': return `${s.name} = ${printExpr(s.value)}`;
    case 'local': return `local ${s.name}: ${s.t}[${s.size}] ${s.scope}`;
    case 'store': return `${s.buf}[${printExpr(s.idx)}] = ${printExpr(s.value)}`;
    case 'if': return `if ${printExpr(s.cond)} {`;
    case 'warpTree': return `warp_tree ${s.op} ${s.local}[0..${s.size}]${s.combine ? ` by ${printExpr(s.combine)}` : ''}`;
    case 'arrive': return `arrive ${s.counter}[${printExpr(s.idx)}] of ${s.count} -> ${s.local}`;
    default: {
      const never: never = s;
      return `<bad stmt ${JSON.stringify(never)}>`;
    }
  }
}

function printBody(body: readonly Stmt[], indent: string, out: string[]): void {
  for (const s of body) {
    out.push(indent + printStmtHead(s));
    if (s.k === 'for' || s.k === 'if') {
      printBody(s.body, `${indent}  `, out);
      out.push(`${indent}}`);
    }
  }
}

/** Prints statements one per line, loop and if bodies indented by two spaces more (no trailing newline). */
export function printStmts(body: readonly Stmt[], indent = ''): string {
  const out: string[] = [];
  printBody(body, indent, out);
  return out.join('\n');
}

/** `kernel NAME  # ops: a, b` then its body indented by two spaces; ends with a newline. */
export function printKernel(k: Kernel): string {
  const out = [`kernel ${k.name}${k.ops.length ? `  # ops: ${k.ops.join(', ')}` : ''}`];
  printBody(k.body, '  ', out);
  return out.join('\n') + '\n';
}

function dataText(b: Buffer): string {
  if (!b.data) return '';
  const fmt = b.dtype === 'float32' ? (v: number) => formatF32(Math.fround(v))
    : b.dtype === 'bool' ? (v: number) => (v ? 'true' : 'false') : String;
  return ` = [${b.data.map(fmt).join(', ')}]`;
}

/** One line per buffer and binding under `program @NAME`, then each kernel after a blank line. */
export function printProgram(p: Program): string {
  const out = [`program @${p.name}`];
  for (const b of p.buffers) out.push(`  buffer ${b.name}: ${DTYPE_SHORT[b.dtype] ?? b.dtype}[${b.size}] ${b.kind}${dataText(b)}`);
  for (const [what, list] of [['input', p.inputs], ['param', p.params], ['output', p.outputs], ['update', p.updates]] as const) {
    for (const e of list) out.push(`  ${what} ${JSON.stringify(e.name)} -> ${e.buffer}`);
  }
  return [out.join('\n') + '\n', ...p.kernels.map(printKernel)].join('\n');
}
