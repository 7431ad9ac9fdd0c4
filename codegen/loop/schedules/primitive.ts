// The schedule primitive interface and the state a recipe applies primitives to (see index.ts for the overview).
import type { Buffer, Kernel, Program, Stmt } from '../ir.js';
import { ScheduleError, namer } from './loops.js';

/** What a primitive sees and changes: one kernel's body and the program's buffers (pack adds one). */
export interface KernelView {
  readonly body: readonly Stmt[];
  readonly buffers: readonly Buffer[];
  /** a name unused in the kernel and among buffers, starting with prefix */
  readonly fresh: (prefix: string) => string;
}

/**
 * A schedule primitive: a loop-IR → loop-IR transform of one kernel. `check` says why it does not apply (one
 * line), or undefined; `apply` is called only when check passed and returns the new body (and buffers, when it
 * adds some). Every primitive keeps results bit for bit: it moves, splits and caches computations, never
 * reassociates them.
 */
export interface Primitive<A> {
  readonly name: string;
  readonly check: (k: KernelView, args: A) => string | undefined;
  readonly apply: (k: KernelView, args: A) => { body: Stmt[]; buffers?: Buffer[] };
}

/** Called after every primitive application with its name, the whole program, and where it applied. */
export type Trace = (name: string, program: Program, at: { readonly kernel: number; readonly recipe: string }) => void;

/** Builds a primitive (so the type of its arguments is inferred). */
export function primitive<A>(p: Primitive<A>): Primitive<A> {
  return p;
}

/** The scheduling state of one kernel of a program: recipes apply primitives to it by name. */
export class Schedule {
  private readonly used: Set<string>;
  private readonly next: (prefix: string) => string;

  /** The primitives applied so far, by name. */
  readonly applied: string[] = [];

  constructor(public program: Program, readonly kernel: number, private readonly trace?: Trace, public recipe = '') {
    const k = program.kernels[kernel];
    if (!k) throw new Error(`schedule: no kernel ${kernel}`);
    this.used = new Set();
    this.buffers = program.buffers;
    this.unnamed.push(k.body);
    this.next = namer(this.used);
  }

  get body(): readonly Stmt[] {
    return this.program.kernels[this.kernel]!.body;
  }

  get name(): string {
    return this.program.kernels[this.kernel]!.name;
  }

  fresh(prefix: string): string {
    this.addNames();
    return this.next(prefix);
  }

  /** A buffer name: base itself when unused, else base_1, base_2, ... */
  freshBuffer(base: string): string {
    this.addNames();
    let name = base, i = 1;
    while (this.used.has(name)) name = `${base}_${i++}`;
    this.used.add(name);
    return name;
  }

  private view(): KernelView {
    return { body: this.body, buffers: this.program.buffers, fresh: (p) => this.fresh(p) };
  }

  /** Why p does not apply with args, or undefined. */
  check<A>(p: Primitive<A>, args: A): string | undefined {
    return p.check(this.view(), args);
  }

  /** Applies p (a ScheduleError naming the primitive, the kernel and the reason when it does not apply). */
  apply<A>(p: Primitive<A>, args: A): void {
    const why = p.check(this.view(), args);
    if (why !== undefined) throw new ScheduleError(`schedule ${this.recipe ? `${this.recipe}: ` : ''}${p.name} on kernel ${this.name}: ${why}`);
    this.applyChecked(p, args);
  }

  /** Applies p, whose check passed on the kernel as it is. */
  private applyChecked<A>(p: Primitive<A>, args: A): void {
    const out = p.apply(this.view(), args);
    this.replace(out.body, out.buffers);
    this.applied.push(p.name);
    if (this.pending) this.pending.push([p.name, this.program, this.recipe]);
    else this.trace?.(p.name, this.program, { kernel: this.kernel, recipe: this.recipe });
  }

  /** Steps of the attempt under way, reported when it succeeds. */
  private pending: [string, Program, string][] | undefined;

  /**
   * Runs f (applying primitives) as one step: when a primitive in it does not apply, the kernel is left as it
   * was and nothing is reported. Whether f ran through.
   */
  attempt(f: () => void): boolean {
    const saved = { program: this.program, applied: this.applied.length, pending: this.pending };
    this.pending = [];
    try {
      f();
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      this.program = saved.program;
      this.applied.length = saved.applied;
      this.pending = saved.pending;
      return false;
    }
    const done = this.pending;
    this.pending = saved.pending;
    for (const [name, program, recipe] of done) {
      if (this.pending) this.pending.push([name, program, recipe]);
      else this.trace?.(name, program, { kernel: this.kernel, recipe });
    }
    return true;
  }

  /** Applies p when it applies; whether it did. */
  try<A>(p: Primitive<A>, args: A): boolean {
    if (p.check(this.view(), args) !== undefined) return false;
    this.applyChecked(p, args);
    return true;
  }

  /** Replaces the kernel's body (and the buffers), as a step of the schedule outside any primitive. */
  replace(body: Stmt[], buffers?: Buffer[]): void {
    const kernels: Kernel[] = this.program.kernels.slice();
    kernels[this.kernel] = { ...kernels[this.kernel]!, body };
    this.program = buffers ? { ...this.program, kernels, buffers } : { ...this.program, kernels };
    this.unnamed.push(body);
  }

  /** The program's buffers when the schedule began, until their names are in `used`. */
  private buffers: readonly Buffer[] | undefined;
  /** Bodies the kernel has had whose names are not in `used` yet (added when a fresh name is next asked for). */
  private readonly unnamed: (readonly Stmt[])[] = [];
  /** Loops whose names (their own and those inside) are in `used` already: statements are never changed in place. */
  private readonly named = new Set<Stmt>();

  /** Adds the names declared in every body the kernel has had to `used` (fresh names avoid all of them). */
  private addNames(): void {
    const add = (body: readonly Stmt[]): void => {
      for (const s of body) {
        if (s.k === 'for') {
          if (this.named.has(s)) continue;
          this.named.add(s);
          this.used.add(s.v);
          add(s.body);
        } else if (s.k === 'decl' || s.k === 'local') this.used.add(s.name);
      }
    };
    if (this.buffers) for (const b of this.buffers) this.used.add(b.name);
    this.buffers = undefined;
    for (const body of this.unnamed) add(body);
    this.unnamed.length = 0;
  }
}
