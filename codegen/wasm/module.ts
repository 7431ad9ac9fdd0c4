// A thin typed wrapper over binaryen: opaque expression refs, one method per node, memory details hidden.
import binaryen from 'binaryen';

export type Ref = number & { readonly __ref: unique symbol };
export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

const TYPES: Record<ValType, binaryen.Type> = {
  i32: binaryen.i32, i64: binaryen.i64, f32: binaryen.f32, f64: binaryen.f64, v128: binaryen.v128,
};

/** Locals of one function being built: parameters first, then variables added on demand. */
export class Locals {
  private readonly vars: ValType[] = [];
  private readonly byName = new Map<string, number>();
  constructor(readonly params: readonly ValType[] = []) {}

  /** Index of a named local, created with the given type on first use. */
  get(name: string, t: ValType): number {
    let i = this.byName.get(name);
    if (i === undefined) {
      i = this.params.length + this.vars.length;
      this.vars.push(t);
      this.byName.set(name, i);
    }
    return i;
  }

  get varTypes(): binaryen.Type[] {
    return this.vars.map((t) => TYPES[t]);
  }
}

/** Functions with more locals are not optimized by binaryen (see finish). */
const MAX_OPTIMIZED_LOCALS = 1500;

/**
 * The binaryen passes run on the kernels: constants propagated through locals and folded, and instructions
 * simplified (constant address parts into the load's offset). Measured (AMD EPYC Zen 2, SIMD128, one thread, CPU time
 * per predict call, bench/results-compile.md): the Transformer ran 5-10 % slower without any pass and as fast with
 * these two as with all of -O3; the MLP and CNN ran as fast with none. -O3 cost 0.76, 1.05 and 1.66 s of CPU in a fresh
 * compile process for the MLP, CNN and Transformer (most of it V8 compiling binaryen's own optimizer), these two
 * 0.14, 0.21 and 0.30 s. V8's optimizing compiler does the rest (register allocation, CSE, code placement).
 */
const PASSES = ['precompute-propagate', 'optimize-instructions'];

/** The binaryen module with the node constructors the renderer uses. */
export class WasmModule {
  readonly m: binaryen.Module;
  private labels = 0;
  private readonly functions: { name: string; locals: number }[] = [];

  /** relaxed: the module may use relaxed-SIMD instructions (relaxedMadd). */
  constructor(readonly relaxed = false) {
    this.m = new binaryen.Module();
    this.m.setFeatures(binaryen.Features.MVP | binaryen.Features.SIMD128 | binaryen.Features.NontrappingFPToInt
      | binaryen.Features.SignExt | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt | binaryen.Features.Multivalue | (relaxed ? binaryen.Features.RelaxedSIMD : 0));
  }

  /** f32x4.relaxed_madd(a, b, c) = a * b + c, fused (one rounding) where the CPU has FMA, else as mul then add. */
  relaxedMadd(a: Ref, b: Ref, c: Ref): Ref {
    if (!this.relaxed) throw new Error('wasm: internal error: relaxed_madd in a SIMD128 module');
    // binaryen.js has no wrapper for it; the C API's, on the module's pointer
    const api = binaryen as unknown as { _BinaryenSIMDTernary(m: number, op: number, a: number, b: number, c: number): number; RelaxedMaddVecF32x4: number };
    return api._BinaryenSIMDTernary((this.m as unknown as { ptr: number }).ptr, api.RelaxedMaddVecF32x4, a, b, c) as Ref;
  }

  label(prefix: string): string {
    return `${prefix}${this.labels++}`;
  }

  // constants
  i32(v: number): Ref { return this.m.i32.const(v | 0) as Ref; }
  f32(v: number): Ref { return this.m.f32.const(v) as Ref; }
  f64(v: number): Ref { return this.m.f64.const(v) as Ref; }

  // locals
  get(i: number, t: ValType): Ref { return this.m.local.get(i, TYPES[t]) as Ref; }
  set(i: number, v: Ref): Ref { return this.m.local.set(i, v) as Ref; }
  tee(i: number, v: Ref, t: ValType): Ref { return this.m.local.tee(i, v, TYPES[t]) as Ref; }

  // memory: byte address = ptr + offset; f32splat: one f32 in all four lanes (v128.load32_splat)
  load(t: 'f32' | 'i32' | 'u8' | 's8' | 'v128' | 'f32splat', offset: number, ptr: Ref): Ref {
    switch (t) {
      case 'f32splat': return this.m.v128.load32_splat(offset, 4, ptr) as Ref;
      case 's8': return this.m.i32.load8_s(offset, 1, ptr) as Ref;
      case 'f32': return this.m.f32.load(offset, 4, ptr) as Ref;
      case 'i32': return this.m.i32.load(offset, 4, ptr) as Ref;
      case 'u8': return this.m.i32.load8_u(offset, 1, ptr) as Ref;
      case 'v128': return this.m.v128.load(offset, 4, ptr) as Ref;
    }
  }
  store(t: 'f32' | 'i32' | 'u8' | 's8' | 'v128', offset: number, ptr: Ref, v: Ref): Ref {
    switch (t) {
      case 's8': return this.m.i32.store8(offset, 1, ptr, v) as Ref;
      case 'f32': return this.m.f32.store(offset, 4, ptr, v) as Ref;
      case 'i32': return this.m.i32.store(offset, 4, ptr, v) as Ref;
      case 'u8': return this.m.i32.store8(offset, 1, ptr, v) as Ref;
      case 'v128': return this.m.v128.store(offset, 4, ptr, v) as Ref;
    }
  }

  // control
  block(stmts: Ref[], label?: string): Ref { return this.m.block(label ?? null, stmts, binaryen.none) as Ref; }
  valueBlock(stmts: Ref[], t: ValType): Ref { return this.m.block(null, stmts, TYPES[t]) as Ref; }
  loop(label: string, body: Ref): Ref { return this.m.loop(label, body) as Ref; }
  brIf(label: string, cond: Ref): Ref { return this.m.br(label, cond) as Ref; }
  if(cond: Ref, then: Ref, otherwise?: Ref): Ref { return this.m.if(cond, then, otherwise) as Ref; }
  select(c: Ref, a: Ref, b: Ref): Ref { return this.m.select(c, a, b) as Ref; }
  call(name: string, args: Ref[], result: ValType | 'none'): Ref {
    return this.m.call(name, args, result === 'none' ? binaryen.none : TYPES[result]) as Ref;
  }
  /** A call of the host's function `name` of module "math" (imported on first use; the runtime provides it). */
  callMath(name: string, args: Ref[], params: readonly ValType[], result: ValType): Ref {
    if (!this.imported.has(name)) {
      this.importFunction(name, 'math', name, params, result);
      this.imported.add(name);
    }
    return this.call(name, args, result);
  }
  private readonly imported = new Set<string>();
  /** A call of the host's function `base` of `module` (imported as module.base on first use). */
  callImport(module: string, base: string, args: Ref[], params: readonly ValType[], result: ValType | 'none'): Ref {
    const name = `${module}.${base}`;
    if (!this.imported.has(name)) {
      this.m.addFunctionImport(name, module, base, binaryen.createType(params.map((t) => TYPES[t])), result === 'none' ? binaryen.none : TYPES[result]);
      this.imported.add(name);
    }
    return this.call(name, args, result);
  }
  ret(v?: Ref): Ref { return this.m.return(v) as Ref; }
  drop(v: Ref): Ref { return this.m.drop(v) as Ref; }
  nop(): Ref { return this.m.nop() as Ref; }

  /** for (v = 0; v < extent; v++) { body; step } — as a do-while, extent >= 1. */
  forLoop(v: number, extent: number, body: Ref[], step: Ref[] = []): Ref {
    const l = this.label('L');
    const next = this.set(v, this.m.i32.add(this.get(v, 'i32'), this.i32(1)) as Ref);
    return this.block([
      this.set(v, this.i32(0)),
      this.loop(l, this.block([...body, ...step, next, this.brIf(l, this.m.i32.lt_s(this.get(v, 'i32'), this.i32(extent)) as Ref)])),
    ]);
  }

  addFunction(name: string, params: readonly ValType[], result: ValType | 'none', locals: Locals, body: Ref): void {
    this.m.addFunction(name, binaryen.createType(params.map((t) => TYPES[t])), result === 'none' ? binaryen.none : TYPES[result], locals.varTypes, body);
    this.functions.push({ name, locals: locals.varTypes.length });
  }

  importFunction(name: string, module: string, base: string, params: readonly ValType[], result: ValType): void {
    this.m.addFunctionImport(name, module, base, binaryen.createType(params.map((t) => TYPES[t])), TYPES[result]);
  }

  exportFunction(name: string): void {
    this.m.addFunctionExport(name, name);
  }

  /** One memory of `pages` 64 KiB pages (up to `maximum`), exported as "memory", with data segments. */
  memory(pages: number, segments: { offset: number; data: Uint8Array }[], maximum = pages): void {
    this.m.setMemory(pages, maximum, 'memory', segments.map((s) => ({ offset: this.i32(s.offset), data: s.data, passive: false })));
  }

  /** memory.copy: n bytes from src to dst (as memmove). */
  memoryCopy(dst: Ref, src: Ref, n: Ref): Ref { return this.m.memory.copy(dst, src, n) as Ref; }

  /**
   * Validates, optimizes (PASSES) and emits the binary. Throws with binaryen's message when invalid. A function with
   * more than MAX_OPTIMIZED_LOCALS locals is left to V8's optimizing compiler: binaryen's local passes grow
   * quadratically with them (a 4,000-line LSTM gradient kernel took longer than 10 minutes).
   */
  finish(optimize = true): Uint8Array {
    return this.finishBoth(optimize, false).binary;
  }

  /**
   * As finish; with `shared` also the same code over an imported shared memory "env"."memory" (for threads: every
   * thread's instance imports the one memory).
   */
  finishBoth(optimize: boolean, shared: boolean): { binary: Uint8Array; shared?: Uint8Array } {
    if (!this.m.validate()) throw new Error('wasm: binaryen rejected the generated module');
    if (optimize) {
      binaryen.setOptimizeLevel(3);
      binaryen.setShrinkLevel(0);
      if (this.functions.every((f) => f.locals <= MAX_OPTIMIZED_LOCALS)) this.m.runPasses(PASSES);
      else for (const f of this.functions) if (f.locals <= MAX_OPTIMIZED_LOCALS) this.m.runPassesOnFunction(f.name, PASSES);
    }
    const binary = this.m.emitBinary();
    let sharedBinary: Uint8Array | undefined;
    if (shared) {
      this.m.addMemoryImport('0', 'env', 'memory');
      sharedBinary = shareImportedMemory(this.m.emitBinary());
    }
    this.m.dispose();
    return { binary, shared: sharedBinary };
  }

  get ops(): binaryen.Module {
    return this.m;
  }
}

/**
 * The binary with its imported memory declared shared (limits flag 1 -> 3: shared, with a maximum): binaryen.js
 * makes no memory shared once created, and the single-threaded module must not be.
 */
function shareImportedMemory(bin: Uint8Array): Uint8Array {
  const out = bin.slice();
  let p = 8; // magic and version
  const leb = (): number => {
    let v = 0, shift = 0, b: number;
    do {
      b = out[p++]!;
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return v;
  };
  while (p < out.length) {
    const id = out[p++]!, size = leb(), end = p + size;
    if (id === 2) { // imports: module name, field name, kind, description
      for (let n = leb(); n > 0; n--) {
        const skip = (): void => { const len = leb(); p += len; }; // (p += leb() would add to p as it was before)
        skip();
        skip();
        const kind = out[p++]!;
        if (kind === 0) leb(); // function: type index
        else if (kind === 1) { p++; if (out[p++]! & 1) leb(); leb(); } // table: reftype, limits
        else if (kind === 2) {
          if (out[p] !== 1) throw new Error(`wasm: imported memory has limits flag ${out[p]}, expected 1 (with a maximum)`);
          out[p] = 3;
          return out;
        } else if (kind === 3) p += 2; // global: value type, mutability
        else { p++; leb(); } // tag: attribute, type index
      }
    }
    p = end;
  }
  throw new Error('wasm: the module imports no memory to share');
}
