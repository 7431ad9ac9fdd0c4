// kiln's own WebAssembly writer: binaryen.js's node constructors (the ones kiln calls, and every SIMD128 op) over nodes
// written as bytes, and a module (types, imports, functions, one memory, globals, exports, data, function names).
// Importing binaryen took about 0.8 s of a wasm compile; this writes the same instructions without it.

/** Value types by their binary code; `none` is the empty block type, `unreachable` the type of code after a branch. */
export const Type = { none: 0x40, i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b, unreachable: -1 } as const;
export type Type = number;

/** An expression: an index into its module's nodes. */
export type ExpressionRef = number;

const enum K { Op, Block, Loop, If, Br, Call, GlobalGet, GlobalSet }

/** A node: its operands (kids) written first, then its own bytes; structured ones also open a label. */
interface Node {
  readonly k: K;
  readonly t: Type;
  readonly code: readonly number[];
  readonly kids: readonly ExpressionRef[];
  /** a block's or loop's label, a branch's target, a call's or global's name */
  readonly name?: string | null;
  /** the value of a constant, or of each lane of a splatted constant */
  readonly value?: number;
}

const [I32, I64, F32, F64, V128, NONE] = [Type.i32, Type.i64, Type.f32, Type.f64, Type.v128, Type.none];

/** Unsigned LEB128 of a non-negative integer below 2^53. */
function uleb(out: number[], v: number): void {
  do {
    const b = v % 128;
    v = Math.floor(v / 128);
    out.push(v > 0 ? b | 0x80 : b);
  } while (v > 0);
}

/** Signed LEB128 of an integer (a bigint for i64). */
function sleb(out: number[], v: bigint): void {
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && !(b & 0x40)) || (v === -1n && b & 0x40)) return void out.push(b);
    out.push(b | 0x80);
  }
}

function sleb32(out: number[], v: number): void {
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return void out.push(b);
    out.push(b | 0x80);
  }
}

/** The bytes of an opcode: one byte below 0x100, else a prefix byte (0xfc, 0xfd) and the LEB128 of the rest. */
function opcode(op: number): number[] {
  if (op < 0x100) return [op];
  const out = [op >> 12];
  uleb(out, op & 0xfff);
  return out;
}

/** A growing byte buffer. */
class Bytes {
  buf: Uint8Array<ArrayBuffer> = new Uint8Array(1 << 16);
  n = 0;
  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.n++] = b;
  }
  bytes(bs: ArrayLike<number>): void {
    this.room(bs.length);
    this.buf.set(bs, this.n);
    this.n += bs.length;
  }
  u32(v: number): void {
    const t: number[] = [];
    uleb(t, v);
    this.bytes(t);
  }
  name(s: string): void {
    const b = utf8.encode(s);
    this.u32(b.length);
    this.bytes(b);
  }
  /** Writes a section: id, the LEB128 size, then what `body` writes. */
  section(id: number, body: (b: Bytes) => void): void {
    const inner = new Bytes();
    body(inner);
    this.byte(id);
    this.u32(inner.n);
    this.bytes(inner.buf.subarray(0, inner.n));
  }
  get result(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.n);
  }
}

const utf8 = new TextEncoder();
const f32Bits = new DataView(new ArrayBuffer(8));

export interface Segment {
  /** where it starts: an i32.const expression */
  readonly offset: ExpressionRef;
  readonly data: Uint8Array;
  readonly passive?: boolean;
}

interface Func { name: string; params: readonly Type[]; result: Type; vars: readonly Type[]; body: ExpressionRef }
interface Import { name: string; module: string; base: string; params: readonly Type[]; result: Type }

/** The module: nodes, then functions, imports, globals, exports, memory; emitBinary writes it. */
export class Module {
  private readonly nodes: Node[] = [];
  private readonly functions: Func[] = [];
  private readonly imports: Import[] = [];
  private readonly globals: { name: string; t: Type; mutable: boolean; init: ExpressionRef }[] = [];
  private readonly exports: { internal: string; external: string }[] = [];
  private mem: { initial: number; maximum: number; exportName: string | null; segments: readonly Segment[]; shared: boolean; imported?: { module: string; base: string } } | undefined;

  private node(k: K, t: Type, code: readonly number[], kids: readonly ExpressionRef[], name?: string | null, value?: number): ExpressionRef {
    this.nodes.push({ k, t, code, kids, name, value });
    return this.nodes.length - 1;
  }
  /** The value of a constant node (of a splatted one: of each lane). */
  private constant(e: ExpressionRef): number | undefined {
    return this.nodes[e]!.value;
  }
  /**
   * x / c as x * (1 / c) where c is ± a power of two whose reciprocal is a normal float: both are the correctly
   * rounded x * 2^-k, so the same bits, and a multiply is several times cheaper than a divide (binaryen's
   * optimize-instructions did this; V8 does not: measured 5 % of the Transformer's predict).
   */
  private divide(div: (a: ExpressionRef, b: ExpressionRef) => ExpressionRef, mul: (a: ExpressionRef, b: ExpressionRef) => ExpressionRef,
    constant: (v: number) => ExpressionRef, min: number) {
    return (a: ExpressionRef, b: ExpressionRef): ExpressionRef => {
      const c = this.constant(b);
      return c !== undefined && powerOfTwo(c) && Math.abs(c) >= min && Math.abs(1 / c) >= min ? mul(a, constant(1 / c)) : div(a, b);
    };
  }
  private constF32(value: number): ExpressionRef {
    f32Bits.setFloat32(0, value, true);
    return this.node(K.Op, F32, [0x43, ...new Uint8Array(f32Bits.buffer, 0, 4)], [], undefined, f32Bits.getFloat32(0, true));
  }
  private constF64(value: number): ExpressionRef {
    f32Bits.setFloat64(0, value, true);
    return this.node(K.Op, F64, [0x44, ...new Uint8Array(f32Bits.buffer, 0, 8)], [], undefined, value);
  }
  /** f32x4.splat or f64x2.splat, keeping the lanes' value when x is a constant. */
  private splat(op: number, x: ExpressionRef): ExpressionRef {
    return this.node(K.Op, V128, opcode(op), [x], undefined, this.constant(x));
  }
  /** x * 2^k as x << k (exact in wrapping arithmetic); either operand may be the constant. */
  private multiply(a: ExpressionRef, b: ExpressionRef): ExpressionRef {
    for (const [x, c] of [[a, b], [b, a]] as const) {
      const k = this.constant(c);
      if (k !== undefined && k !== 0 && ((k >>> 0) & ((k >>> 0) - 1)) === 0) return this.node(K.Op, I32, [0x74], [x, this.i32.const(Math.log2(k >>> 0))]);
    }
    return this.node(K.Op, I32, [0x6c], [a, b]);
  }
  private typeOf(e: ExpressionRef | undefined): Type {
    return e === undefined ? NONE : this.nodes[e]!.t;
  }
  /** An op of fixed bytes whose operands are kids. */
  private op(code: readonly number[], t: Type) {
    return (...kids: ExpressionRef[]) => this.node(K.Op, t, code, kids);
  }

  // control
  block(label: string | null, children: readonly ExpressionRef[], resultType: Type = NONE): ExpressionRef {
    // a void block ending in a branch or return has no value and is never left at its end (binaryen's rule)
    const t = resultType === NONE && children.length > 0 && this.typeOf(children.at(-1)) === Type.unreachable ? Type.unreachable : resultType;
    return this.node(K.Block, t, [], children, label);
  }
  loop(label: string | null, body: ExpressionRef): ExpressionRef {
    return this.node(K.Loop, this.typeOf(body), [], [body], label);
  }
  if(condition: ExpressionRef, ifTrue: ExpressionRef, ifFalse?: ExpressionRef): ExpressionRef {
    const a = this.typeOf(ifTrue), b = ifFalse === undefined ? undefined : this.typeOf(ifFalse);
    const t = b === undefined ? NONE : a === Type.unreachable ? b : a;
    return this.node(K.If, t, [], ifFalse === undefined ? [condition, ifTrue] : [condition, ifTrue, ifFalse]);
  }
  br(label: string, condition?: ExpressionRef, value?: ExpressionRef): ExpressionRef {
    if (value !== undefined) throw new Error('wasm: internal error: a branch with a value');
    return this.node(K.Br, condition === undefined ? Type.unreachable : NONE, [], condition === undefined ? [] : [condition], label);
  }
  br_if(label: string, condition?: ExpressionRef, value?: ExpressionRef): ExpressionRef {
    return this.br(label, condition, value);
  }
  call(name: string, operands: readonly ExpressionRef[], returnType: Type): ExpressionRef {
    return this.node(K.Call, returnType, [], operands, name);
  }
  return(value?: ExpressionRef): ExpressionRef {
    return this.node(K.Op, Type.unreachable, [0x0f], value === undefined ? [] : [value]);
  }
  drop(value: ExpressionRef): ExpressionRef {
    return this.node(K.Op, NONE, [0x1a], [value]);
  }
  nop(): ExpressionRef {
    return this.node(K.Op, NONE, [0x01], []);
  }
  unreachable(): ExpressionRef {
    return this.node(K.Op, Type.unreachable, [0x00], []);
  }
  /** binaryen's operand order: the condition first, though wasm evaluates it last. */
  select(condition: ExpressionRef, ifTrue: ExpressionRef, ifFalse: ExpressionRef): ExpressionRef {
    return this.node(K.Op, this.typeOf(ifTrue), [0x1b], [ifTrue, ifFalse, condition]);
  }

  readonly local = {
    get: (index: number, type: Type): ExpressionRef => this.node(K.Op, type, imm([0x20], index), []),
    set: (index: number, value: ExpressionRef): ExpressionRef => this.node(K.Op, NONE, imm([0x21], index), [value]),
    tee: (index: number, value: ExpressionRef, type: Type): ExpressionRef => this.node(K.Op, type, imm([0x22], index), [value]),
  };
  readonly global = {
    get: (name: string, type: Type): ExpressionRef => this.node(K.GlobalGet, type, [], [], name),
    set: (name: string, value: ExpressionRef): ExpressionRef => this.node(K.GlobalSet, NONE, [], [value], name),
  };
  readonly memory = {
    size: (): ExpressionRef => this.node(K.Op, I32, [0x3f, 0], []),
    grow: (value: ExpressionRef): ExpressionRef => this.node(K.Op, I32, [0x40, 0], [value]),
    copy: (dest: ExpressionRef, source: ExpressionRef, size: ExpressionRef): ExpressionRef => this.node(K.Op, NONE, [0xfc, 10, 0, 0], [dest, source, size]),
    fill: (dest: ExpressionRef, value: ExpressionRef, size: ExpressionRef): ExpressionRef => this.node(K.Op, NONE, [0xfc, 11, 0], [dest, value, size]),
  };

  private load(op: number, t: Type) {
    return (offset: number, align: number, ptr: ExpressionRef): ExpressionRef => this.node(K.Op, t, memarg(op, offset, align), [ptr]);
  }
  private store(op: number) {
    return (offset: number, align: number, ptr: ExpressionRef, value: ExpressionRef): ExpressionRef => this.node(K.Op, NONE, memarg(op, offset, align), [ptr, value]);
  }
  /** ops named name -> opcode, all of result type t (unary or binary alike: the operands are the arguments) */
  private ops<N extends string>(t: Type, table: Record<N, number>): Record<N, (...kids: ExpressionRef[]) => ExpressionRef> {
    return Object.fromEntries(Object.entries(table).map(([n, op]) => [n, this.op(opcode(op as number), t)])) as Record<N, (...kids: ExpressionRef[]) => ExpressionRef>;
  }
  private lane(op: number, t: Type) {
    return (vec: ExpressionRef, index: number, value?: ExpressionRef): ExpressionRef => this.node(K.Op, t, [...opcode(op), index], value === undefined ? [vec] : [vec, value]);
  }
  private laneMem(op: number, t: Type) {
    return (offset: number, align: number, index: number, ptr: ExpressionRef, vec: ExpressionRef): ExpressionRef => this.node(K.Op, t, [...memarg(op, offset, align), index], [ptr, vec]);
  }

  readonly i32 = {
    load: this.load(0x28, I32), load8_s: this.load(0x2c, I32), load8_u: this.load(0x2d, I32), load16_s: this.load(0x2e, I32), load16_u: this.load(0x2f, I32),
    store: this.store(0x36), store8: this.store(0x3a), store16: this.store(0x3b),
    const: (value: number): ExpressionRef => { const c = [0x41]; sleb32(c, value | 0); return this.node(K.Op, I32, c, [], undefined, value | 0); },
    ...this.ops(I32, {
      clz: 0x67, ctz: 0x68, popcnt: 0x69, eqz: 0x45, reinterpret: 0xbc, extend8_s: 0xc0, extend16_s: 0xc1, wrap: 0xa7,
      add: 0x6a, sub: 0x6b, mul: 0x6c, div_s: 0x6d, div_u: 0x6e, rem_s: 0x6f, rem_u: 0x70, and: 0x71, or: 0x72, xor: 0x73,
      shl: 0x74, shr_s: 0x75, shr_u: 0x76, rotl: 0x77, rotr: 0x78,
      eq: 0x46, ne: 0x47, lt_s: 0x48, lt_u: 0x49, gt_s: 0x4a, gt_u: 0x4b, le_s: 0x4c, le_u: 0x4d, ge_s: 0x4e, ge_u: 0x4f,
    }),
    mul: (a: ExpressionRef, b: ExpressionRef): ExpressionRef => this.multiply(a, b),
    trunc_s: this.ops(I32, { f32: 0xa8, f64: 0xaa }), trunc_u: this.ops(I32, { f32: 0xa9, f64: 0xab }),
    trunc_s_sat: this.ops(I32, { f32: 0xfc000, f64: 0xfc002 }), trunc_u_sat: this.ops(I32, { f32: 0xfc001, f64: 0xfc003 }),
  };
  readonly i64 = {
    load: this.load(0x29, I64), load8_s: this.load(0x30, I64), load8_u: this.load(0x31, I64), load16_s: this.load(0x32, I64),
    load16_u: this.load(0x33, I64), load32_s: this.load(0x34, I64), load32_u: this.load(0x35, I64),
    store: this.store(0x37), store8: this.store(0x3c), store16: this.store(0x3d), store32: this.store(0x3e),
    const: (value: number | bigint): ExpressionRef => { const c = [0x42]; sleb(c, BigInt.asIntN(64, BigInt(value))); return this.node(K.Op, I64, c, []); },
    ...this.ops(I64, {
      clz: 0x79, ctz: 0x7a, popcnt: 0x7b, reinterpret: 0xbd, extend8_s: 0xc2, extend16_s: 0xc3, extend32_s: 0xc4, extend_s: 0xac, extend_u: 0xad,
      add: 0x7c, sub: 0x7d, mul: 0x7e, div_s: 0x7f, div_u: 0x80, rem_s: 0x81, rem_u: 0x82, and: 0x83, or: 0x84, xor: 0x85,
      shl: 0x86, shr_s: 0x87, shr_u: 0x88, rotl: 0x89, rotr: 0x8a,
    }),
    ...this.ops(I32, { eqz: 0x50, eq: 0x51, ne: 0x52, lt_s: 0x53, lt_u: 0x54, gt_s: 0x55, gt_u: 0x56, le_s: 0x57, le_u: 0x58, ge_s: 0x59, ge_u: 0x5a }),
    trunc_s: this.ops(I64, { f32: 0xae, f64: 0xb0 }), trunc_u: this.ops(I64, { f32: 0xaf, f64: 0xb1 }),
    trunc_s_sat: this.ops(I64, { f32: 0xfc004, f64: 0xfc006 }), trunc_u_sat: this.ops(I64, { f32: 0xfc005, f64: 0xfc007 }),
  };
  readonly f32 = {
    load: this.load(0x2a, F32), store: this.store(0x38),
    const: (value: number): ExpressionRef => this.constF32(value),
    ...this.ops(F32, {
      neg: 0x8c, abs: 0x8b, ceil: 0x8d, floor: 0x8e, trunc: 0x8f, nearest: 0x90, sqrt: 0x91, reinterpret: 0xbe, demote: 0xb6,
      add: 0x92, sub: 0x93, mul: 0x94, div: 0x95, copysign: 0x98, min: 0x96, max: 0x97,
    }),
    div: this.divide(this.op([0x95], F32), this.op([0x94], F32), (v) => this.constF32(v), 2 ** -126),
    ...this.ops(I32, { eq: 0x5b, ne: 0x5c, lt: 0x5d, gt: 0x5e, le: 0x5f, ge: 0x60 }),
    convert_s: this.ops(F32, { i32: 0xb2, i64: 0xb4 }), convert_u: this.ops(F32, { i32: 0xb3, i64: 0xb5 }),
  };
  readonly f64 = {
    load: this.load(0x2b, F64), store: this.store(0x39),
    const: (value: number): ExpressionRef => this.constF64(value),
    ...this.ops(F64, {
      neg: 0x9a, abs: 0x99, ceil: 0x9b, floor: 0x9c, trunc: 0x9d, nearest: 0x9e, sqrt: 0x9f, reinterpret: 0xbf, promote: 0xbb,
      add: 0xa0, sub: 0xa1, mul: 0xa2, div: 0xa3, copysign: 0xa6, min: 0xa4, max: 0xa5,
    }),
    div: this.divide(this.op([0xa3], F64), this.op([0xa2], F64), (v) => this.constF64(v), 2 ** -1022),
    ...this.ops(I32, { eq: 0x61, ne: 0x62, lt: 0x63, gt: 0x64, le: 0x65, ge: 0x66 }),
    convert_s: this.ops(F64, { i32: 0xb7, i64: 0xb9 }), convert_u: this.ops(F64, { i32: 0xb8, i64: 0xba }),
  };
  readonly v128 = {
    load: this.load(0xfd000, V128), load8x8_s: this.load(0xfd001, V128), load8x8_u: this.load(0xfd002, V128),
    load16x4_s: this.load(0xfd003, V128), load16x4_u: this.load(0xfd004, V128), load32x2_s: this.load(0xfd005, V128), load32x2_u: this.load(0xfd006, V128),
    load8_splat: this.load(0xfd007, V128), load16_splat: this.load(0xfd008, V128), load32_splat: this.load(0xfd009, V128), load64_splat: this.load(0xfd00a, V128),
    load32_zero: this.load(0xfd05c, V128), load64_zero: this.load(0xfd05d, V128),
    load8_lane: this.laneMem(0xfd054, V128), load16_lane: this.laneMem(0xfd055, V128), load32_lane: this.laneMem(0xfd056, V128), load64_lane: this.laneMem(0xfd057, V128),
    store8_lane: this.laneMem(0xfd058, NONE), store16_lane: this.laneMem(0xfd059, NONE), store32_lane: this.laneMem(0xfd05a, NONE), store64_lane: this.laneMem(0xfd05b, NONE),
    store: this.store(0xfd00b),
    const: (value: ArrayLike<number>): ExpressionRef => {
      if (value.length !== 16) throw new Error('wasm: internal error: v128.const takes 16 bytes');
      return this.node(K.Op, V128, [...opcode(0xfd00c), ...Array.from(value, (b) => b & 0xff)], []);
    },
    ...this.ops(V128, { not: 0xfd04d, and: 0xfd04e, andnot: 0xfd04f, or: 0xfd050, xor: 0xfd051, bitselect: 0xfd052 }),
    ...this.ops(I32, { any_true: 0xfd053 }),
  };
  readonly i8x16 = {
    shuffle: (left: ExpressionRef, right: ExpressionRef, mask: ArrayLike<number>): ExpressionRef => this.node(K.Op, V128, [...opcode(0xfd00d), ...Array.from(mask)], [left, right]),
    extract_lane_s: this.lane(0xfd015, I32), extract_lane_u: this.lane(0xfd016, I32), replace_lane: this.lane(0xfd017, V128),
    ...this.ops(V128, {
      swizzle: 0xfd00e, splat: 0xfd00f, eq: 0xfd023, ne: 0xfd024, lt_s: 0xfd025, lt_u: 0xfd026, gt_s: 0xfd027, gt_u: 0xfd028, le_s: 0xfd029, le_u: 0xfd02a,
      ge_s: 0xfd02b, ge_u: 0xfd02c, abs: 0xfd060, neg: 0xfd061, popcnt: 0xfd062, narrow_i16x8_s: 0xfd065, narrow_i16x8_u: 0xfd066,
      shl: 0xfd06b, shr_s: 0xfd06c, shr_u: 0xfd06d, add: 0xfd06e, add_saturate_s: 0xfd06f, add_saturate_u: 0xfd070, sub: 0xfd071,
      sub_saturate_s: 0xfd072, sub_saturate_u: 0xfd073, min_s: 0xfd076, min_u: 0xfd077, max_s: 0xfd078, max_u: 0xfd079, avgr_u: 0xfd07b,
    }),
    ...this.ops(I32, { all_true: 0xfd063, bitmask: 0xfd064 }),
  };
  readonly i16x8 = {
    extract_lane_s: this.lane(0xfd018, I32), extract_lane_u: this.lane(0xfd019, I32), replace_lane: this.lane(0xfd01a, V128),
    ...this.ops(V128, {
      splat: 0xfd010, eq: 0xfd02d, ne: 0xfd02e, lt_s: 0xfd02f, lt_u: 0xfd030, gt_s: 0xfd031, gt_u: 0xfd032, le_s: 0xfd033, le_u: 0xfd034,
      ge_s: 0xfd035, ge_u: 0xfd036, extadd_pairwise_i8x16_s: 0xfd07c, extadd_pairwise_i8x16_u: 0xfd07d, abs: 0xfd080, neg: 0xfd081,
      q15mulr_sat_s: 0xfd082, narrow_i32x4_s: 0xfd085, narrow_i32x4_u: 0xfd086, extend_low_i8x16_s: 0xfd087, extend_high_i8x16_s: 0xfd088,
      extend_low_i8x16_u: 0xfd089, extend_high_i8x16_u: 0xfd08a, shl: 0xfd08b, shr_s: 0xfd08c, shr_u: 0xfd08d, add: 0xfd08e,
      add_saturate_s: 0xfd08f, add_saturate_u: 0xfd090, sub: 0xfd091, sub_saturate_s: 0xfd092, sub_saturate_u: 0xfd093, mul: 0xfd095,
      min_s: 0xfd096, min_u: 0xfd097, max_s: 0xfd098, max_u: 0xfd099, avgr_u: 0xfd09b, extmul_low_i8x16_s: 0xfd09c,
      extmul_high_i8x16_s: 0xfd09d, extmul_low_i8x16_u: 0xfd09e, extmul_high_i8x16_u: 0xfd09f,
    }),
    ...this.ops(I32, { all_true: 0xfd083, bitmask: 0xfd084 }),
  };
  readonly i32x4 = {
    extract_lane: this.lane(0xfd01b, I32), replace_lane: this.lane(0xfd01c, V128),
    ...this.ops(V128, {
      splat: 0xfd011, eq: 0xfd037, ne: 0xfd038, lt_s: 0xfd039, lt_u: 0xfd03a, gt_s: 0xfd03b, gt_u: 0xfd03c, le_s: 0xfd03d, le_u: 0xfd03e,
      ge_s: 0xfd03f, ge_u: 0xfd040, extadd_pairwise_i16x8_s: 0xfd07e, extadd_pairwise_i16x8_u: 0xfd07f, abs: 0xfd0a0, neg: 0xfd0a1,
      extend_low_i16x8_s: 0xfd0a7, extend_high_i16x8_s: 0xfd0a8, extend_low_i16x8_u: 0xfd0a9, extend_high_i16x8_u: 0xfd0aa,
      shl: 0xfd0ab, shr_s: 0xfd0ac, shr_u: 0xfd0ad, add: 0xfd0ae, sub: 0xfd0b1, mul: 0xfd0b5, min_s: 0xfd0b6, min_u: 0xfd0b7,
      max_s: 0xfd0b8, max_u: 0xfd0b9, dot_i16x8_s: 0xfd0ba, extmul_low_i16x8_s: 0xfd0bc, extmul_high_i16x8_s: 0xfd0bd,
      extmul_low_i16x8_u: 0xfd0be, extmul_high_i16x8_u: 0xfd0bf, trunc_sat_f32x4_s: 0xfd0f8, trunc_sat_f32x4_u: 0xfd0f9,
      trunc_sat_f64x2_s_zero: 0xfd0fc, trunc_sat_f64x2_u_zero: 0xfd0fd,
    }),
    ...this.ops(I32, { all_true: 0xfd0a3, bitmask: 0xfd0a4 }),
  };
  readonly i64x2 = {
    extract_lane: this.lane(0xfd01d, I64), replace_lane: this.lane(0xfd01e, V128),
    ...this.ops(V128, {
      splat: 0xfd012, abs: 0xfd0c0, neg: 0xfd0c1, extend_low_i32x4_s: 0xfd0c7, extend_high_i32x4_s: 0xfd0c8, extend_low_i32x4_u: 0xfd0c9,
      extend_high_i32x4_u: 0xfd0ca, shl: 0xfd0cb, shr_s: 0xfd0cc, shr_u: 0xfd0cd, add: 0xfd0ce, sub: 0xfd0d1, mul: 0xfd0d5,
      eq: 0xfd0d6, ne: 0xfd0d7, lt_s: 0xfd0d8, gt_s: 0xfd0d9, le_s: 0xfd0da, ge_s: 0xfd0db, extmul_low_i32x4_s: 0xfd0dc,
      extmul_high_i32x4_s: 0xfd0dd, extmul_low_i32x4_u: 0xfd0de, extmul_high_i32x4_u: 0xfd0df,
    }),
    ...this.ops(I32, { all_true: 0xfd0c3, bitmask: 0xfd0c4 }),
  };
  readonly f32x4 = {
    extract_lane: this.lane(0xfd01f, F32), replace_lane: this.lane(0xfd020, V128),
    ...this.ops(V128, {
      splat: 0xfd013, eq: 0xfd041, ne: 0xfd042, lt: 0xfd043, gt: 0xfd044, le: 0xfd045, ge: 0xfd046, demote_f64x2_zero: 0xfd05e,
      ceil: 0xfd067, floor: 0xfd068, trunc: 0xfd069, nearest: 0xfd06a, abs: 0xfd0e0, neg: 0xfd0e1, sqrt: 0xfd0e3, add: 0xfd0e4,
      sub: 0xfd0e5, mul: 0xfd0e6, div: 0xfd0e7, min: 0xfd0e8, max: 0xfd0e9, pmin: 0xfd0ea, pmax: 0xfd0eb,
      convert_i32x4_s: 0xfd0fa, convert_i32x4_u: 0xfd0fb,
      // relaxed SIMD (binaryen.js names none of them: kiln's names)
      relaxed_madd: 0xfd105, relaxed_nmadd: 0xfd106, relaxed_min: 0xfd10d, relaxed_max: 0xfd10e,
    }),
    splat: (x: ExpressionRef): ExpressionRef => this.splat(0xfd013, x),
    div: this.divide(this.op(opcode(0xfd0e7), V128), this.op(opcode(0xfd0e6), V128), (v) => this.splat(0xfd013, this.constF32(v)), 2 ** -126),
  };
  readonly f64x2 = {
    extract_lane: this.lane(0xfd021, F64), replace_lane: this.lane(0xfd022, V128),
    ...this.ops(V128, {
      splat: 0xfd014, eq: 0xfd047, ne: 0xfd048, lt: 0xfd049, gt: 0xfd04a, le: 0xfd04b, ge: 0xfd04c, promote_low_f32x4: 0xfd05f,
      ceil: 0xfd074, floor: 0xfd075, trunc: 0xfd07a, nearest: 0xfd094, abs: 0xfd0ec, neg: 0xfd0ed, sqrt: 0xfd0ef, add: 0xfd0f0,
      sub: 0xfd0f1, mul: 0xfd0f2, div: 0xfd0f3, min: 0xfd0f4, max: 0xfd0f5, pmin: 0xfd0f6, pmax: 0xfd0f7,
      convert_low_i32x4_s: 0xfd0fe, convert_low_i32x4_u: 0xfd0ff, relaxed_madd: 0xfd107, relaxed_nmadd: 0xfd108,
    }),
    splat: (x: ExpressionRef): ExpressionRef => this.splat(0xfd014, x),
    div: this.divide(this.op(opcode(0xfd0f3), V128), this.op(opcode(0xfd0f2), V128), (v) => this.splat(0xfd014, this.constF64(v)), 2 ** -1022),
  };

  // the module
  addFunction(name: string, params: readonly Type[], result: Type, vars: readonly Type[], body: ExpressionRef): void {
    this.functions.push({ name, params, result, vars, body });
  }
  addFunctionImport(name: string, module: string, base: string, params: readonly Type[], result: Type): void {
    this.imports.push({ name, module, base, params, result });
  }
  addFunctionExport(internal: string, external: string): void {
    this.exports.push({ internal, external });
  }
  addGlobal(name: string, type: Type, mutable: boolean, init: ExpressionRef): void {
    this.globals.push({ name, t: type, mutable, init });
  }
  /** One memory of initial..maximum 64 KiB pages, exported as exportName unless null, with data segments. */
  setMemory(initial: number, maximum: number, exportName: string | null, segments: readonly Segment[] = [], shared = false): void {
    this.mem = { initial, maximum, exportName, segments, shared };
  }
  /** The memory becomes an import (module.base), shared or not; its export and segments stay. */
  importMemory(module: string, base: string, shared: boolean): void {
    if (!this.mem) throw new Error('wasm: internal error: no memory to import');
    this.mem = { ...this.mem, shared, imported: { module, base } };
  }

  emitBinary(): Uint8Array<ArrayBuffer> {
    const out = new Bytes();
    out.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    // function types, deduplicated
    const types: { params: readonly Type[]; result: Type }[] = [], typeIndex = new Map<string, number>();
    const typeOf = (params: readonly Type[], result: Type): number => {
      const key = `${params.join(',')}>${result}`;
      let i = typeIndex.get(key);
      if (i === undefined) {
        i = types.length;
        types.push({ params, result });
        typeIndex.set(key, i);
      }
      return i;
    };
    const funcIndex = new Map<string, number>();
    const importTypes = this.imports.map((f) => typeOf(f.params, f.result));
    const funcTypes = this.functions.map((f) => typeOf(f.params, f.result));
    [...this.imports, ...this.functions].forEach((f, i) => {
      if (funcIndex.has(f.name)) throw new Error(`wasm: internal error: function ${f.name} defined twice`);
      funcIndex.set(f.name, i);
    });
    const globalIndex = new Map(this.globals.map((g, i) => [g.name, i]));
    const mem = this.mem;
    out.section(1, (b) => {
      b.u32(types.length);
      for (const t of types) {
        b.byte(0x60);
        b.u32(t.params.length);
        b.bytes(t.params);
        if (t.result === NONE) b.byte(0);
        else b.bytes([1, t.result]);
      }
    });
    const memImport = mem?.imported;
    if (this.imports.length > 0 || memImport) {
      out.section(2, (b) => {
        b.u32(this.imports.length + (memImport ? 1 : 0));
        this.imports.forEach((f, i) => {
          b.name(f.module);
          b.name(f.base);
          b.byte(0);
          b.u32(importTypes[i]!);
        });
        if (mem && memImport) {
          b.name(memImport.module);
          b.name(memImport.base);
          b.byte(2);
          limits(b, mem.initial, mem.maximum, mem.shared);
        }
      });
    }
    out.section(3, (b) => {
      b.u32(funcTypes.length);
      for (const t of funcTypes) b.u32(t);
    });
    if (mem && !memImport) {
      out.section(5, (b) => {
        b.u32(1);
        limits(b, mem.initial, mem.maximum, mem.shared);
      });
    }
    if (this.globals.length > 0) {
      out.section(6, (b) => {
        b.u32(this.globals.length);
        for (const g of this.globals) {
          b.bytes([g.t, g.mutable ? 1 : 0]);
          this.write(b, g.init, [], funcIndex, globalIndex);
          b.byte(0x0b);
        }
      });
    }
    const exports = this.exports.map((e) => {
      const i = funcIndex.get(e.internal);
      if (i === undefined) throw new Error(`wasm: internal error: export of unknown function ${e.internal}`);
      return { name: e.external, kind: 0, index: i };
    });
    if (mem?.exportName != null) exports.push({ name: mem.exportName, kind: 2, index: 0 });
    out.section(7, (b) => {
      b.u32(exports.length);
      for (const e of exports) {
        b.name(e.name);
        b.byte(e.kind);
        b.u32(e.index);
      }
    });
    const passive = mem?.segments.filter((s) => s.passive).length ?? 0;
    if (passive > 0) out.section(12, (b) => b.u32(mem!.segments.length)); // data count: memory.init and data.drop need it
    out.section(10, (b) => {
      b.u32(this.functions.length);
      const body = new Bytes();
      for (const f of this.functions) {
        body.n = 0;
        // locals in runs of one type
        const runs: [number, Type][] = [];
        for (const t of f.vars) {
          const last = runs.at(-1);
          if (last && last[1] === t) last[0]++;
          else runs.push([1, t]);
        }
        body.u32(runs.length);
        for (const [n, t] of runs) {
          body.u32(n);
          body.byte(t);
        }
        this.inline(body, f.body, [], funcIndex, globalIndex);
        body.byte(0x0b);
        b.u32(body.n);
        b.bytes(body.buf.subarray(0, body.n));
      }
    });
    if (mem && mem.segments.length > 0) {
      out.section(11, (b) => {
        b.u32(mem.segments.length);
        for (const s of mem.segments) {
          if (s.passive) b.byte(1);
          else {
            b.byte(0);
            this.write(b, s.offset, [], funcIndex, globalIndex);
            b.byte(0x0b);
          }
          b.u32(s.data.length);
          b.bytes(s.data);
        }
      });
    }
    // function names, for stack traces and profiles
    out.section(0, (b) => {
      b.name('name');
      const names = new Bytes();
      const all = [...this.imports, ...this.functions];
      names.u32(all.length);
      all.forEach((f, i) => {
        names.u32(i);
        names.name(f.name);
      });
      b.byte(1);
      b.u32(names.n);
      b.bytes(names.buf.subarray(0, names.n));
    });
    return out.result;
  }

  /** An expression's instructions; an unlabeled block's children are written in its place (no branch targets it). */
  private inline(b: Bytes, e: ExpressionRef, labels: (string | null)[], funcs: Map<string, number>, globals: Map<string, number>): void {
    const n = this.nodes[e]!;
    if (n.k === K.Block && n.name == null) for (const c of n.kids) this.inline(b, c, labels, funcs, globals);
    else this.write(b, e, labels, funcs, globals);
  }

  private write(b: Bytes, e: ExpressionRef, labels: (string | null)[], funcs: Map<string, number>, globals: Map<string, number>): void {
    const n = this.nodes[e]!;
    const blockType = n.t === Type.unreachable ? NONE : n.t;
    switch (n.k) {
      case K.Op:
        for (const c of n.kids) this.inline(b, c, labels, funcs, globals);
        b.bytes(n.code);
        return;
      case K.Block:
      case K.Loop:
        if (n.k === K.Block && n.name == null) return this.inline(b, e, labels, funcs, globals);
        b.bytes([n.k === K.Block ? 0x02 : 0x03, blockType]);
        labels.push(n.name ?? null);
        for (const c of n.kids) this.inline(b, c, labels, funcs, globals);
        labels.pop();
        b.byte(0x0b);
        break;
      case K.If:
        this.inline(b, n.kids[0]!, labels, funcs, globals);
        b.bytes([0x04, blockType]);
        labels.push(null);
        this.inline(b, n.kids[1]!, labels, funcs, globals);
        if (n.kids.length > 2) {
          b.byte(0x05);
          this.inline(b, n.kids[2]!, labels, funcs, globals);
        }
        labels.pop();
        b.byte(0x0b);
        break;
      case K.Br: {
        for (const c of n.kids) this.inline(b, c, labels, funcs, globals);
        const at = labels.lastIndexOf(n.name!);
        if (at < 0) throw new Error(`wasm: internal error: branch to ${n.name}, not an enclosing label`);
        b.byte(n.kids.length > 0 ? 0x0d : 0x0c);
        b.u32(labels.length - 1 - at);
        return;
      }
      case K.Call: {
        for (const c of n.kids) this.inline(b, c, labels, funcs, globals);
        const i = funcs.get(n.name!);
        if (i === undefined) throw new Error(`wasm: internal error: call of unknown function ${n.name}`);
        b.byte(0x10);
        b.u32(i);
        return;
      }
      case K.GlobalGet:
      case K.GlobalSet: {
        for (const c of n.kids) this.inline(b, c, labels, funcs, globals);
        const i = globals.get(n.name!);
        if (i === undefined) throw new Error(`wasm: internal error: unknown global ${n.name}`);
        b.byte(n.k === K.GlobalGet ? 0x23 : 0x24);
        b.u32(i);
        return;
      }
    }
    // a structured instruction whose end is never reached: nothing after it may expect a value it does not leave
    if (n.t === Type.unreachable) b.byte(0x00);
  }
}

/** Whether c is ± 2^k, a normal f64 (so a normal f32 is one too): no mantissa bits (log2 rounds 2^20 (1 + 2^-52) to 20). */
function powerOfTwo(c: number): boolean {
  f32Bits.setFloat64(0, c, true);
  const hi = f32Bits.getUint32(4, true), exponent = hi & 0x7ff00000;
  return f32Bits.getUint32(0, true) === 0 && (hi & 0xfffff) === 0 && exponent !== 0 && exponent !== 0x7ff00000;
}

function imm(code: number[], v: number): number[] {
  uleb(code, v);
  return code;
}

/** An opcode with its memory argument: log2 of the alignment (0 for natural: binaryen's convention), the offset. */
function memarg(op: number, offset: number, align: number): number[] {
  if (!Number.isInteger(offset) || offset < 0 || offset >= 2 ** 32) throw new Error(`wasm: internal error: memory offset ${offset}`);
  const code = opcode(op);
  uleb(code, align > 0 ? Math.log2(align) : naturalAlign(op));
  uleb(code, offset);
  return code;
}

/** log2 of an access's natural alignment. */
function naturalAlign(op: number): number {
  switch (op) {
    case 0x2c: case 0x2d: case 0x30: case 0x31: case 0x3a: case 0x3c: case 0xfd007: case 0xfd054: case 0xfd058: return 0;
    case 0x2e: case 0x2f: case 0x32: case 0x33: case 0x3b: case 0x3d: case 0xfd008: case 0xfd055: case 0xfd059: return 1;
    case 0x28: case 0x2a: case 0x34: case 0x35: case 0x36: case 0x38: case 0x3e: case 0xfd009: case 0xfd05c: case 0xfd056: case 0xfd05a: return 2;
    case 0xfd000: case 0xfd00b: return 4;
    default: return 3;
  }
}

function limits(b: Bytes, initial: number, maximum: number, shared: boolean): void {
  b.byte(shared ? 3 : 1);
  b.u32(initial);
  b.u32(maximum);
}
