// The scoped symbol table of loop IR: loop variables, decls and local arrays by name, innermost scope first.
import type { AxisKind, Scalar } from './ir.js';

/** What a name in scope stands for, as its statement declared it. */
export type LoopSym =
  | { readonly kind: 'loop'; readonly t: 'i32'; readonly extent: number; readonly axis: AxisKind }
  | { readonly kind: 'decl'; readonly t: Scalar }
  | { readonly kind: 'local'; readonly t: Scalar; readonly size: number; readonly scope: 'register' | 'shared' };

/**
 * Names in nested scopes (a kernel body, each loop body), each with its LoopSym and what the pass using the table
 * adds to it (`X`: the verifier's per-thread flag, the interpreter's storage slot, simplify's value range).
 */
export class SymbolTable<X extends object = object> {
  private readonly frames: Map<string, LoopSym & X>[] = [new Map()];
  /** bumped by every change, so `visible` is computed once per state */
  private changes = 0;
  private shown?: { readonly at: number; readonly list: readonly [string, LoopSym & X][] };

  /** Runs f in a new innermost scope. */
  within<R>(f: () => R): R {
    this.frames.push(new Map());
    this.changes++;
    try {
      return f();
    } finally {
      this.frames.pop();
      this.changes++;
    }
  }

  /** Scopes open now (1 outside any `within`). */
  get depth(): number {
    return this.frames.length;
  }

  /** Binds a name in the innermost scope (over any binding of it there). */
  declare(name: string, sym: LoopSym & X): void {
    this.frames[this.frames.length - 1]!.set(name, sym);
    this.changes++;
  }

  /** The innermost binding of a name. */
  lookup(name: string): (LoopSym & X) | undefined {
    for (let i = this.frames.length - 1; i >= 0; i--) {
      const s = this.frames[i]!.get(name);
      if (s) return s;
    }
    return undefined;
  }

  /**
   * Every visible name with its innermost binding, in the order the names were first bound (outermost first).
   * The same array until the table changes.
   */
  visible(): readonly [string, LoopSym & X][] {
    if (this.shown?.at !== this.changes) {
      const seen = new Map<string, LoopSym & X>();
      for (const f of this.frames) for (const [n, s] of f) seen.set(n, s);
      this.shown = { at: this.changes, list: [...seen] };
    }
    return this.shown.list;
  }
}
