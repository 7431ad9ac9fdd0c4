// A thin typed wrapper over kiln's wasm encoder (binaryen.js's API): opaque expression refs, one method per node, memory details hidden.
import { Module, Type } from './encoder.js';

export type Ref = number & { readonly __ref: unique symbol };
export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

const TYPES: Record<ValType, Type> = { i32: Type.i32, i64: Type.i64, f32: Type.f32, f64: Type.f64, v128: Type.v128 };

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

  get varTypes(): Type[] {
    return this.vars.map((t) => TYPES[t]);
  }
}

/** The module with the node constructors the renderer uses. */
export class WasmModule {
  readonly m = new Module();
  private labels = 0;

  /** relaxed: the module may use relaxed-SIMD instructions (relaxedMadd). */
  constructor(readonly relaxed = false) {}

  /** f32x4.relaxed_madd(a, b, c) = a * b + c, fused (one rounding) where the CPU has FMA, else as mul then add. */
  relaxedMadd(a: Ref, b: Ref, c: Ref): Ref {
    if (!this.relaxed) throw new Error('wasm: internal error: relaxed_madd in a SIMD128 module');
    return this.m.f32x4.relaxed_madd(a, b, c) as Ref;
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
  /** q8: a quad of int8 (loop/ir.ts), an i32 at any byte address; q8x4: four of them */
  load(t: 'f32' | 'i32' | 'u8' | 's8' | 'v128' | 'f32splat' | 'q8' | 'q8x4', offset: number, ptr: Ref): Ref {
    switch (t) {
      case 'q8': return this.m.i32.load(offset, 1, ptr) as Ref;
      case 'q8x4': return this.m.v128.load(offset, 1, ptr) as Ref;
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
  block(stmts: Ref[], label?: string): Ref { return this.m.block(label ?? null, stmts, Type.none) as Ref; }
  valueBlock(stmts: Ref[], t: ValType): Ref { return this.m.block(null, stmts, TYPES[t]) as Ref; }
  loop(label: string, body: Ref): Ref { return this.m.loop(label, body) as Ref; }
  brIf(label: string, cond: Ref): Ref { return this.m.br(label, cond) as Ref; }
  if(cond: Ref, then: Ref, otherwise?: Ref): Ref { return this.m.if(cond, then, otherwise) as Ref; }
  select(c: Ref, a: Ref, b: Ref): Ref { return this.m.select(c, a, b) as Ref; }
  call(name: string, args: Ref[], result: ValType | 'none'): Ref {
    return this.m.call(name, args, result === 'none' ? Type.none : TYPES[result]) as Ref;
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
      this.m.addFunctionImport(name, module, base, params.map((t) => TYPES[t]), result === 'none' ? Type.none : TYPES[result]);
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
    this.m.addFunction(name, params.map((t) => TYPES[t]), result === 'none' ? Type.none : TYPES[result], locals.varTypes, body);
  }

  importFunction(name: string, module: string, base: string, params: readonly ValType[], result: ValType): void {
    this.m.addFunctionImport(name, module, base, params.map((t) => TYPES[t]), TYPES[result]);
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

  /** The binary, validated: an invalid module is a kiln internal error. */
  finish(): Uint8Array {
    return this.finishBoth(false).binary;
  }

  /**
   * As finish; with `shared` also the same code over an imported shared memory "env"."memory" (for threads: every
   * thread's instance imports the one memory).
   */
  finishBoth(shared: boolean): { binary: Uint8Array; shared?: Uint8Array } {
    const binary = validated(this.m.emitBinary(), this.relaxed);
    if (!shared) return { binary };
    this.m.importMemory('env', 'memory', true);
    return { binary, shared: validated(this.m.emitBinary(), this.relaxed) };
  }

  get ops(): Module {
    return this.m;
  }
}

let relaxedSimd: boolean | undefined;

/** Whether this JavaScript engine takes relaxed SIMD (Node 20 only with --experimental-wasm-relaxed-simd). */
function hasRelaxedSimd(): boolean {
  if (relaxedSimd === undefined) {
    const m = new Module();
    m.addFunction('f', [Type.v128], Type.v128, [], m.f32x4.relaxed_madd(m.local.get(0, Type.v128), m.local.get(0, Type.v128), m.local.get(0, Type.v128)));
    relaxedSimd = WebAssembly.validate(m.emitBinary());
  }
  return relaxedSimd;
}

/**
 * The binary when WebAssembly takes it; else a kiln internal error with the engine's reason, in one line. A
 * relaxed-SIMD module goes unchecked where the engine lacks relaxed SIMD (its SIMD128 twin, the same code but for
 * relaxed_madd, is checked).
 */
function validated(bin: Uint8Array<ArrayBuffer>, relaxed: boolean): Uint8Array<ArrayBuffer> {
  if (WebAssembly.validate(bin) || (relaxed && !hasRelaxedSimd())) return bin;
  let why = 'no reason given';
  try {
    new WebAssembly.Module(bin);
  } catch (e) {
    why = (e as Error).message;
  }
  throw new Error(`wasm: internal error: kiln wrote an invalid module (${why})`);
}
