// Loop-IR verifier: names, scopes, scalar types, static index bounds and program bindings; returns every problem.
import { BINARY_OPS, COMPARE_OPS, FLOAT_UNARY_OPS, LOGICAL_OPS, UNARY_OPS } from '../../ir/ops.js';
import type { DType } from '../../ir/types.js';
import { foldShape } from './fold.js';
import { type Buffer, type BufferKind, type Expr, type Kernel, type Program, QUANT_BINARY, type Scalar, type Stmt } from './ir.js';
import { printExpr, printStmtHead } from './printer.js';
import { type RangeEnv, rangeOf } from './range.js';
import { type LoopSym, SymbolTable } from './scope.js';
import { WARP_A, WARP_B, exprVars } from './visit.js';

const SCALARS: ReadonlySet<string> = new Set(['f32', 'i32', 'bool']);
// int8 is stored in one byte and computed as i32
const ELEM: Partial<Record<DType, Scalar>> = { float32: 'f32', int32: 'i32', bool: 'bool', int8: 'i32' };
const BUFFER_KINDS: ReadonlySet<string> = new Set(['input', 'param', 'output', 'temp', 'const']);
const AXIS_KINDS: ReadonlySet<string> = new Set(['serial', 'parallel', 'vector', 'unroll', 'fold', 'block', 'thread']);
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const INT_MIN = -2147483648, INT_MAX = 2147483647;

const UNARY: ReadonlySet<string> = new Set(UNARY_OPS);
const FLOAT_ONLY: ReadonlySet<string> = new Set(FLOAT_UNARY_OPS);
const ARITH: ReadonlySet<string> = new Set(BINARY_OPS);
const COMPARE: ReadonlySet<string> = new Set(COMPARE_OPS);
const ORDERED: ReadonlySet<string> = new Set(['lt', 'le', 'gt', 'ge']);
const LOGICAL: ReadonlySet<string> = new Set(LOGICAL_OPS);

/** A local array declared in a GPU block outside its thread loops is private to each thread. */
type Sym = LoopSym & { readonly perThread?: boolean };

/** Threads per GPU block and static shared memory per block (CUDA's limits). */
const MAX_BLOCK_THREADS = 1024, MAX_SHARED_BYTES = 48 * 1024;

/** Problems of one kernel against the program's buffers (empty when well formed). */
export function verifyKernel(k: Kernel, buffers: readonly Buffer[]): string[] {
  const problems: string[] = [];
  const bufs = new Map(buffers.map((b) => [b.name, b]));
  const syms = new SymbolTable<{ readonly perThread?: boolean }>();
  let where = `kernel ${k.name}`;
  const bad = (msg: string): void => { problems.push(`${where}: ${msg}`); };

  const lookup = (name: string): Sym | undefined => syms.lookup(name);
  const declare = (name: string, sym: Sym, what: string): void => {
    if (!IDENT.test(name)) bad(`${what} name ${JSON.stringify(name)} is not an identifier`);
    if (lookup(name)) bad(`${what} '${name}' shadows a variable or local array of the same name in scope`);
    else if (bufs.has(name)) bad(`${what} '${name}' has the name of a buffer`);
    syms.declare(name, sym);
  };
  /** Index bounds are checked over the loop variables (a decl's value is not followed). */
  const loops: RangeEnv = (name) => {
    const s = lookup(name);
    return s?.kind === 'loop' ? { lo: 0, hi: s.extent - 1, exact: true } : undefined;
  };
  /** The element type, size and kind of what a load or store names, or undefined (reported) when nothing. */
  /** Where in a GPU grid the statement being checked is: outside any block, in a block, in a thread loop. */
  let gpu: 'none' | 'block' | 'thread' = 'none';
  let sharedBytes = 0;
  const array = (name: string, verb: string): { t: Scalar | undefined; size: number; kind: BufferKind | 'local' } | undefined => {
    const s = lookup(name);
    if (s?.kind === 'local' && s.perThread && gpu !== 'thread') bad(`${verb} '${name}', private to each thread, outside a thread loop`);
    if (s?.kind === 'local') return { t: s.t, size: s.size, kind: 'local' };
    if (s) {
      bad(`${verb} '${name}', a scalar variable, not a buffer or local array`);
      return undefined;
    }
    const b = bufs.get(name);
    if (!b) {
      bad(`${verb} '${name}', which is neither a declared buffer nor a local array in scope`);
      return undefined;
    }
    return { t: ELEM[b.dtype], size: b.size, kind: b.kind };
  };
  /** span: the elements read from the index on (a quad's 4) */
  const checkIndex = (what: string, idx: Expr, size: number, span = 1): void => {
    expr(idx);
    if (idx.t !== 'i32') bad(`${what}: index ${printExpr(idx)} is ${idx.t}, not i32`);
    const r = rangeOf(idx, loops);
    if (!r) return;
    // an exact range is reached; an inexact one is a superset, so only wholly out of range is sure (under an if,
    // every range is a superset of what is reached: the guard keeps a tile's tail in bounds, the interpreter checks it)
    const last = span - 1, out = r.exact && !guarded ? r.lo < 0 || r.hi + last >= size : r.hi < 0 || r.lo + last >= size;
    if (out) bad(`${what}: index ${printExpr(idx)} ranges over [${r.lo}, ${r.hi}]${last ? ` (its elements to ${r.hi + last})` : ''}, out of bounds for size ${size}`);
  };

  function expr(e: Expr): void {
    const at = (msg: string): void => bad(`${printExpr(e)}: ${msg}`);
    if (!SCALARS.has(e.t)) at(`has no scalar type (t = ${JSON.stringify(e.t)})`);
    switch (e.k) {
      case 'const':
        if (e.t === 'f32' && !Number.isNaN(e.v) && Math.fround(e.v) !== e.v) at(`f32 constant ${e.v} is not a float32 value`);
        if (e.t === 'i32' && !(Number.isInteger(e.v) && e.v >= INT_MIN && e.v <= INT_MAX)) at(`i32 constant ${e.v} is not an int32`);
        if (e.t === 'bool' && e.v !== 0 && e.v !== 1) at(`bool constant ${e.v} is not 0 or 1`);
        return;
      case 'var': {
        // the messages name the variable: no expression prefix
        const s = lookup(e.name);
        if (!s) return bad(`variable '${e.name}' is not declared (by an enclosing loop or an earlier decl)`);
        if (s.kind === 'local') return bad(`'${e.name}' is a local array, not a scalar (load from it)`);
        const t = s.kind === 'loop' ? 'i32' : s.t;
        if (e.t !== t) bad(`variable '${e.name}' is used as ${e.t} but declared ${t}`);
        return;
      }
      case 'load': {
        const a = array(e.buf, 'loads from');
        // a quad reads elements idx .. idx + 3 of an int8 buffer
        checkIndex(`${e.quad ? 'quad ' : ''}load ${e.buf}`, e.idx, a?.size ?? Infinity, e.quad ? 4 : 1);
        if (a?.t && e.t !== a.t) at(`load is typed ${e.t}, but '${e.buf}' holds ${a.t}`);
        if (e.quad && a && (a.kind === 'local' || bufs.get(e.buf)?.dtype !== 'int8')) at(`a quad load reads int8 buffers, and '${e.buf}' is ${a.kind === 'local' ? 'a local array' : `of ${bufs.get(e.buf)?.dtype}`}`);
        return;
      }
      case 'unary': {
        expr(e.a);
        if (!UNARY.has(e.op)) return at(`unknown unary op '${e.op}'`);
        if (e.t !== e.a.t) at(`${e.op} of ${e.a.t} is typed ${e.t}`);
        const need = e.op === 'not' ? 'bool' : FLOAT_ONLY.has(e.op) ? 'f32' : undefined;
        if (need && e.a.t !== need) at(`${e.op} needs a ${need} operand, got ${e.a.t}`);
        if (!need && e.a.t === 'bool') at(`${e.op} does not accept bool`);
        return;
      }
      case 'cast':
        expr(e.a);
        return;
      case 'binary': {
        expr(e.a);
        expr(e.b);
        const { op } = e, ta = e.a.t, tb = e.b.t;
        const known = ARITH.has(op) || COMPARE.has(op) || LOGICAL.has(op) || op === 'mod' || op === 'idiv' || QUANT_BINARY.has(op);
        if (!known) return at(`unknown binary op '${op}'`);
        if (ta !== tb) return at(`operands of ${op} have different types ${ta} and ${tb}`);
        const result: Scalar = COMPARE.has(op) || LOGICAL.has(op) ? 'bool' : ta;
        if (e.t !== result) at(`${op} of ${ta} gives ${result}, but is typed ${e.t}`);
        if (LOGICAL.has(op) && ta !== 'bool') at(`${op} needs bool operands, got ${ta}`);
        if ((ARITH.has(op) || ORDERED.has(op)) && ta === 'bool') at(`${op} does not accept bool`);
        if (QUANT_BINARY.has(op) && ta !== 'i32') at(`${op} needs i32 operands, got ${ta}`);
        if (op === 'mod' || op === 'idiv') {
          if (ta !== 'i32') at(`${op} needs i32 operands, got ${ta}`);
          // floor division and the non-negative remainder agree (a = b*(a//b) + a%b) only for b > 0
          if (e.b.k === 'const' && e.b.v <= 0) at(`${op} by ${e.b.v}: a constant divisor must be positive`);
        }
        return;
      }
      case 'select':
        expr(e.c);
        expr(e.a);
        expr(e.b);
        if (e.c.t !== 'bool') at(`select condition is ${e.c.t}, not bool`);
        if (e.a.t !== e.b.t) at(`select branches have different types ${e.a.t} and ${e.b.t}`);
        else if (e.t !== e.a.t) at(`select of ${e.a.t} is typed ${e.t}`);
        return;
      case 'philox':
        expr(e.counter);
        expr(e.index);
        if ((e.t as Scalar) !== 'f32') at(`philox gives f32, but is typed ${String(e.t)}`);
        if (!Number.isInteger(e.seed)) at(`philox seed ${e.seed} is not an integer`);
        if (e.counter.t !== 'i32') at(`philox counter is ${e.counter.t}, not i32`);
        if (e.index.t !== 'i32') at(`philox index is ${e.index.t}, not i32`);
        return;
      default: {
        const never: never = e;
        at(`unknown expression kind ${JSON.stringify((never as { k: unknown }).k)}`);
      }
    }
  }

  function stmt(s: Stmt): void {
    where = `kernel ${k.name}: ${printStmtHead(s)}`;
    switch (s.k) {
      case 'for': {
        if (!Number.isInteger(s.extent) || s.extent <= 0) bad(`loop extent ${s.extent} is not a positive integer`);
        if (!AXIS_KINDS.has(s.kind)) bad(`unknown loop kind '${s.kind}'`);
        // a fold loop's vector form is the target's to check (its renderer asserts it); its shape is everyone's
        const notFold = s.kind === 'fold' ? foldShape(s) : undefined;
        if (notFold) bad(`not a fold loop: ${notFold}`);
        const saved = [gpu, loopDepth] as const;
        if (s.kind === 'block') {
          if (loopDepth !== blockDepth) bad('a block loop must be at the top of the kernel or directly in block loops');
          blockDepth++;
          if (gpu === 'none') sharedBytes = 0; // counted per launch
          gpu = 'block';
        } else if (s.kind === 'thread') {
          if (gpu !== 'block') bad(gpu === 'thread' ? 'a thread loop inside a thread loop (threads are one axis)' : 'a thread loop outside any block loop');
          if (s.extent > MAX_BLOCK_THREADS) bad(`${s.extent} threads per block, more than ${MAX_BLOCK_THREADS}`);
          gpu = 'thread';
        } else if (gpu !== 'none' && (s.kind === 'parallel' || s.kind === 'vector')) bad(`a ${s.kind} loop inside a GPU block`);
        // schedules find a loop by its variable's name (split, reorder, vectorize...): two loops of one name, even in
        // sibling nests, would let a primitive judge one and change the other
        if (loopNames.has(s.v)) bad(`loop variable '${s.v}' names another loop of this kernel too (loop names are unique per kernel)`);
        loopNames.add(s.v);
        loopDepth++;
        syms.within(() => {
          declare(s.v, { kind: 'loop', t: 'i32', extent: s.extent, axis: s.kind }, 'loop variable');
          block(s.body);
        });
        if (s.kind === 'block') blockDepth--;
        [gpu, loopDepth] = saved;
        return;
      }
      case 'decl':
        expr(s.init); // the new name is not in scope in its own initializer
        if (!SCALARS.has(s.t)) bad(`decl type ${JSON.stringify(s.t)} is not a scalar type`);
        else if (s.init.t !== s.t) bad(`decl '${s.name}' is ${s.t}, but its initializer is ${s.init.t}`);
        declare(s.name, { kind: 'decl', t: s.t }, 'decl');
        return;
      case 'assign': {
        expr(s.value);
        const sym = lookup(s.name);
        if (!sym) return bad(`assigns to '${s.name}', which is not declared`);
        if (sym.kind !== 'decl') return bad(`assigns to '${s.name}', a ${sym.kind === 'loop' ? 'loop variable' : 'local array'}; only decls are assignable`);
        if (s.value.t !== sym.t) bad(`assigns ${s.value.t} to '${s.name}', declared ${sym.t}`);
        return;
      }
      case 'local':
        if (!SCALARS.has(s.t)) bad(`local array type ${JSON.stringify(s.t)} is not a scalar type`);
        if (!Number.isInteger(s.size) || s.size <= 0) bad(`local array size ${s.size} is not a positive integer`);
        if (s.scope !== 'register' && s.scope !== 'shared') bad(`unknown local array scope '${String(s.scope)}'`);
        if (s.scope === 'shared') {
          if (gpu !== 'block') bad('a shared local array must be declared in a GPU block, outside its thread loops');
          sharedBytes += 4 * s.size;
          if (sharedBytes > MAX_SHARED_BYTES) bad(`shared local arrays of the block take ${sharedBytes} bytes, more than ${MAX_SHARED_BYTES}`);
        }
        if (guarded && gpu === 'block') bad('a local array of a GPU block declared under an if (declare it in the block, outside the if)');
        declare(s.name, { kind: 'local', t: s.t, size: s.size, scope: s.scope, perThread: gpu === 'block' && s.scope === 'register' }, 'local array');
        return;
      case 'store': {
        const a = array(s.buf, 'stores into');
        if (gpu === 'block' && a && a.kind !== 'local') bad(`stores into buffer '${s.buf}' in a GPU block outside its thread loops`);
        if (a && (a.kind === 'input' || a.kind === 'const')) bad(`stores into ${a.kind} buffer '${s.buf}' (read-only)`);
        checkIndex(`store ${s.buf}`, s.idx, a?.size ?? Infinity);
        expr(s.value);
        if (a?.t && s.value.t !== a.t) bad(`stores ${s.value.t} into '${s.buf}', which holds ${a.t}`);
        return;
      }
      case 'if': {
        expr(s.cond);
        if (s.cond.t !== 'bool') bad(`if condition is ${s.cond.t}, not bool`);
        // a block loop under an if would not be a launch's grid; a thread loop under one is, its condition uniform
        // over the block's threads (no thread index is in scope outside thread loops)
        guarded++;
        loopDepth++; // so no block loop is under it
        syms.within(() => block(s.body));
        loopDepth--;
        guarded--;
        return;
      }
      case 'warpTree': {
        // a collective of the block's first warp: at block level (an if there is uniform over the block), on a
        // shared array it has room in
        const a = lookup(s.local);
        if (gpu !== 'block') bad('a warp tree must be in a GPU block, outside its thread loops');
        if (a?.kind !== 'local' || a.scope !== 'shared') return bad(`warp tree over '${s.local}', which is no shared local array in scope`);
        if (a.t !== s.t) bad(`warp tree of ${s.t} over '${s.local}', which holds ${a.t}`);
        if (!['add', 'mul', 'max', 'min'].includes(s.op)) bad(`warp tree op '${String(s.op)}' is none of add, mul, max, min`);
        if (s.combine) {
          // the combine reads P[i] and P[i + s] as kiln_a and kiln_b, nothing else
          syms.within(() => {
            declare(WARP_A, { kind: 'decl', t: s.t }, 'decl');
            declare(WARP_B, { kind: 'decl', t: s.t }, 'decl');
            expr(s.combine!);
          });
          if (s.combine.t !== s.t) bad(`warp tree combine is ${s.combine.t}, not ${s.t}`);
          const other = [...exprVars(s.combine)].find((v) => v !== WARP_A && v !== WARP_B);
          if (other) bad(`warp tree combine reads '${other}', not only ${WARP_A} and ${WARP_B}`);
        }
        if (![2, 4, 8, 16, 32].includes(s.size) || s.size > a.size!) bad(`warp tree of ${s.size} elements: not a power of two from 2 to 32 within '${s.local}' (${a.size})`);
        return;
      }
      case 'arrive': {
        // the block's arrival at a counter: at block level, setting a shared i32 local the block has
        const a = array(s.counter, 'counts into'), l = lookup(s.local);
        if (gpu !== 'block') bad('an arrive must be in a GPU block, outside its thread loops');
        if (a && (a.kind === 'local' || a.t !== 'i32')) bad(`arrive counts into '${s.counter}', which is no i32 buffer`);
        if (l?.kind !== 'local' || l.scope !== 'shared' || l.t !== 'i32') bad(`arrive sets '${s.local}', which is no shared i32 local array in scope`);
        if (!Number.isInteger(s.count) || s.count < 1) bad(`arrive count ${s.count} is not a positive integer`);
        checkIndex(`arrive ${s.counter}`, s.idx, a?.size ?? Infinity);
        return;
      }
      default: {
        const never: never = s;
        bad(`unknown statement kind ${JSON.stringify((never as { k: unknown }).k)}`);
      }
    }
  }

  function block(body: readonly Stmt[]): void {
    const outer = where;
    for (const s of body) {
      stmt(s);
      where = outer;
    }
  }

  if (!IDENT.test(k.name)) bad(`kernel name is not an identifier`);
  let loopDepth = 0, blockDepth = 0, guarded = 0;
  const loopNames = new Set<string>();
  if (k.body.some((s) => s.k === 'for' && s.kind === 'block') && !k.body.every((s) => s.k === 'for' && s.kind === 'block')) {
    bad('a kernel with GPU block loops must have nothing else at its top level (each block nest is one launch)');
  }
  block(k.body);
  return problems;
}

function checkBuffer(b: Buffer, bad: (msg: string) => void): void {
  const at = (msg: string): void => bad(`buffer ${b.name}: ${msg}`);
  if (!IDENT.test(b.name)) at(`name ${JSON.stringify(b.name)} is not an identifier`);
  if (!ELEM[b.dtype]) at(`dtype ${b.dtype} is not supported by loop IR (float32, int32, int8, bool)`);
  if (!Number.isInteger(b.size) || b.size < 0) at(`size ${b.size} is not a non-negative integer`);
  if (!BUFFER_KINDS.has(b.kind)) at(`unknown kind '${b.kind}'`);
  if (b.kind === 'const') {
    if (!b.data) at('a const buffer needs data');
    else if (b.data.length !== 1 && b.data.length !== b.size) at(`data has ${b.data.length} values, not 1 (a splat) or ${b.size}`);
  } else if (b.data) at(`only const buffers carry data, this one is ${b.kind}`);
}

/** Problems of a whole program: buffers, bindings, then every kernel (empty when well formed). */
export function verifyProgram(p: Program): string[] {
  const problems: string[] = [];
  const bad = (msg: string): void => { problems.push(`program @${p.name}: ${msg}`); };
  const bufs = new Map<string, Buffer>();
  for (const b of p.buffers) {
    if (bufs.has(b.name)) bad(`buffer ${b.name} is declared twice`);
    bufs.set(b.name, b);
    checkBuffer(b, bad);
  }

  const paramBuffer = new Map<string, string>();
  const bindings = [['input', p.inputs], ['param', p.params], ['output', p.outputs], ['update', p.updates]] as const;
  for (const [what, list] of bindings) {
    const names = new Set<string>();
    const bound = new Map<string, string>();
    for (const e of list) {
      const at = (msg: string): void => bad(`${what} ${JSON.stringify(e.name)} -> ${e.buffer}: ${msg}`);
      if (names.has(e.name)) at(`${what} name is listed twice`);
      names.add(e.name);
      const b = bufs.get(e.buffer);
      if (!b) { at(`buffer ${e.buffer} is not declared`); continue; }
      if (what === 'input' || what === 'param') {
        if (b.kind !== what) at(`buffer ${b.name} is a ${b.kind} buffer, not ${what}`);
        const other = bound.get(b.name);
        if (other !== undefined) at(`buffer ${b.name} is already bound to ${what} ${JSON.stringify(other)}`);
        bound.set(b.name, e.name);
        if (what === 'param') paramBuffer.set(e.name, b.name);
      } else if (what === 'output') {
        if (b.kind !== 'output') at(`buffer ${b.name} is a ${b.kind} buffer, not output`);
      } else {
        const own = paramBuffer.get(e.name);
        if (own === undefined) at(`no param is named ${JSON.stringify(e.name)}`);
        if (b.kind === 'input' || b.kind === 'const') at(`buffer ${b.name} is a read-only ${b.kind} buffer`);
        if (b.kind === 'param' && own !== undefined && own !== b.name) at(`buffer ${b.name} belongs to another param (in-place updates use the param's own buffer ${own})`);
      }
    }
    if (what === 'input' || what === 'param') {
      for (const b of p.buffers) if (b.kind === what && !bound.has(b.name)) bad(`${what} buffer ${b.name} is not bound to any ${what}`);
    }
  }

  const kernelNames = new Set<string>();
  for (const k of p.kernels) {
    if (kernelNames.has(k.name)) bad(`kernel ${k.name} is declared twice`);
    kernelNames.add(k.name);
    problems.push(...verifyKernel(k, p.buffers));
  }
  return problems;
}
