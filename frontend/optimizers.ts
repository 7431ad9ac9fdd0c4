// keras.optimizers: SGD, Adam, AdamW, RMSprop with Keras 3's exact update formulas, as ops (eager or traced).
import { allocate } from '../ir/types.js';
import { callableClass } from './callable.js';
import { NotTraceableError, currentTrace, noRecord } from './engine.js';
import * as ops from './ops.js';
import { type Tensor, Variable } from './tensor.js';
import { type NotImplemented, type OptionNames, checkOptions } from './options.js';
import { describe } from './errors.js';
import { LearningRateSchedule } from './schedules.js';

export * as schedules from './schedules.js';

const OPTIMIZER_OPTIONS = {
  learningRate: true, name: true, weightDecay: true, clipnorm: true, clipvalue: true, globalClipnorm: true,
} satisfies OptionNames<OptimizerOptions>;
/** Keras's options of every optimizer that kiln does not implement. */
const OPTIMIZER_NOT_IMPLEMENTED: NotImplemented = {
  useEma: false, emaMomentum: 0.99, emaOverwriteFrequency: null, lossScaleFactor: null, gradientAccumulationSteps: null,
};

export interface OptimizerOptions {
  /** A number (settable later through `optimizer.learningRate`) or a schedule of the step (keras.optimizers.schedules). */
  learningRate?: number | LearningRateSchedule;
  name?: string;
  /** Decoupled weight decay (AdamW); 0 disables it. */
  weightDecay?: number;
  /** Clips each gradient to this L2 norm (Keras 3; at most one of clipnorm, clipvalue, globalClipnorm). */
  clipnorm?: number | null;
  /** Clips each gradient element to [-clipvalue, clipvalue]. */
  clipvalue?: number | null;
  /** Scales all gradients together so their joint L2 norm is at most this. */
  globalClipnorm?: number | null;
}

/**
 * An optimizer: slot variables per weight plus an iteration counter. `updates` computes new values
 * with ops only, so the same code runs eagerly (applyGradients) and inside a traced training step.
 */
export abstract class Optimizer {
  readonly name: string;
  readonly weightDecay: number;
  readonly iterations: Variable;
  /** The schedule the learning rate follows, or undefined for a settable rate held in `learningRateVariable`. */
  readonly schedule: LearningRateSchedule | undefined;
  /** The learning rate as optimizer state (a float32 scalar param of the training step), unless it is a schedule. */
  readonly learningRateVariable: Variable | undefined;
  readonly clipnorm: number | null;
  readonly clipvalue: number | null;
  readonly globalClipnorm: number | null;
  private readonly slotMap = new Map<Variable, Variable[]>();
  /** Names of the options an optimizer class takes beyond OptimizerOptions'; any other key is an error. */
  static readonly optionNames: Readonly<Record<string, true>> = {};
  /** The options of the Keras class that kiln does not implement, with their Keras defaults (see options.ts). */
  static readonly notImplemented: NotImplemented = {};

  constructor(defaultName: string, options: OptimizerOptions = {}) {
    const cls = new.target as unknown as typeof Optimizer;
    const where = `optimizers.${new.target.name.replace(/Optimizer$/, '')}`;
    checkOptions(options, { ...OPTIMIZER_OPTIONS, ...cls.optionNames }, where, { ...OPTIMIZER_NOT_IMPLEMENTED, ...cls.notImplemented });
    const lr = options.learningRate;
    if (!(lr instanceof LearningRateSchedule)) checkRate(lr, `${where}: learningRate`);
    checkRate(options.weightDecay, `${where}: weightDecay`);
    const clip = (k: 'clipnorm' | 'clipvalue' | 'globalClipnorm'): number | null => {
      const v = options[k];
      if (v === undefined || v === null) return null;
      checkRate(v, `${where}: ${k}`);
      return v || null; // 0 disables clipping, as in Keras
    };
    this.clipnorm = clip('clipnorm');
    this.clipvalue = clip('clipvalue');
    this.globalClipnorm = clip('globalClipnorm');
    const set = [this.clipnorm, this.clipvalue, this.globalClipnorm].filter((v) => v !== null).length;
    if (set > 1) throw new Error(`${where}: only one of clipnorm, clipvalue and globalClipnorm can be set, got clipnorm=${this.clipnorm}, clipvalue=${this.clipvalue}, globalClipnorm=${this.globalClipnorm}`);
    this.name = options.name ?? defaultName;
    this.weightDecay = options.weightDecay ?? 0;
    this.iterations = new Variable('iteration', 'int32', [], new Int32Array(1), false, `${this.name}/iteration`);
    this.schedule = lr instanceof LearningRateSchedule ? lr : undefined;
    this.learningRateVariable = lr instanceof LearningRateSchedule ? undefined
      : new Variable('learning_rate', 'float32', [], Float32Array.of(lr ?? 0.001), false, `${this.name}/learning_rate`);
  }

  /** The current learning rate: the variable's value, or the schedule's at the current iteration. */
  get learningRate(): number {
    return this.schedule ? this.schedule.valueAt(this.iterations.data[0]!) : this.learningRateVariable!.data[0]!;
  }

  /** Sets the learning rate between steps (ReduceLROnPlateau, LearningRateScheduler): no recompilation, it is state. */
  set learningRate(value: number) {
    if (this.schedule) throw new TypeError(`${this.name}: the learning rate follows a ${this.schedule.constructor.name.replace(/Schedule$/, '')} schedule and cannot be set`);
    checkRate(value, `${this.name}: learningRate`);
    this.learningRateVariable!.assign(Float32Array.of(value));
  }

  /** Names of the slots each weight gets (e.g. momentum, velocity). */
  protected abstract get slotNames(): string[];

  /** New value of one weight and of its slots, from its gradient; lr and step (1-based) are float scalars. */
  protected abstract updateStep(grad: Tensor, v: Tensor, slots: Tensor[], lr: Tensor, step: Tensor): [Tensor, Tensor[]];

  /** Creates slot variables for the given weights (once per weight). */
  build(vars: readonly Variable[]): void {
    for (const v of vars) {
      if (this.slotMap.has(v)) continue;
      const base = v.path.replace(/\//g, '_');
      this.slotMap.set(v, this.slotNames.map((s) => new Variable(`${base}_${s}`, v.dtype, v.shape, allocate(v.dtype, v.size), false, `${this.name}/${base}_${s}`)));
    }
  }

  /** All optimizer state, in Keras 3's order: the iteration counter, the learning rate (unless scheduled), each weight's slots. */
  get variables(): Variable[] {
    return [this.iterations, ...(this.learningRateVariable ? [this.learningRateVariable] : []), ...[...this.slotMap.values()].flat()];
  }

  /** The learning rate of the coming step: the state variable, or the schedule at the iteration count (Keras's _get_current_learning_rate). */
  protected currentLearningRate(): Tensor {
    return this.schedule ? this.schedule.call(ops.cast(this.iterations, 'float32')) : this.learningRateVariable!;
  }

  /** Keras 3's BaseOptimizer._clip_gradients: clipnorm per gradient, else globalClipnorm over all, else clipvalue. */
  protected clipGradients(grads: Tensor[]): Tensor[] {
    if (this.clipnorm !== null) {
      const c = this.clipnorm;
      return grads.map((g) => {
        // _clip_by_norm: g * c / max(norm, c), with the norm of an all-zero gradient kept 0 (its sqrt's gradient aside)
        const l2sum = ops.sum(ops.square(g), { keepdims: true });
        const l2norm = ops.where(ops.greater(l2sum, 0), ops.sqrt(l2sum), l2sum);
        return ops.divide(ops.multiply(g, c), ops.maximum(l2norm, c));
      });
    }
    if (this.globalClipnorm !== null) {
      const c = this.globalClipnorm;
      const norm = ops.sqrt(ops.sum(ops.stack(grads.map((g) => ops.sum(ops.square(g))))));
      // clip_by_global_norm: c * min(1 / norm, 1 / c), plus (norm - norm) to make the scale NaN for a non-finite norm
      const scale = ops.add(ops.multiply(ops.minimum(ops.divide(1, norm), 1 / c), c), ops.subtract(norm, norm));
      return grads.map((g) => ops.multiply(g, scale));
    }
    if (this.clipvalue !== null) return grads.map((g) => ops.clip(g, -this.clipvalue!, this.clipvalue!));
    return grads;
  }

  /** New values for every weight, slot and the counter, as [variable, value] pairs (values eager or traced). */
  updates(grads: readonly Tensor[], vars: readonly Variable[]): [Variable, Tensor][] {
    if (grads.length !== vars.length) throw new Error(`${this.name}: ${grads.length} gradients for ${vars.length} variables`);
    this.build(vars);
    const step = ops.cast(ops.add(this.iterations, 1), 'float32');
    const lr = this.currentLearningRate();
    const out: [Variable, Tensor][] = [];
    vars.forEach((v, i) => {
      const g = grads[i]!;
      if (g.shape.length !== v.shape.length || g.shape.some((d, j) => d !== v.shape[j])) {
        throw new Error(`${this.name}: gradient of shape [${g.shape}] for variable '${v.path}' of shape [${v.shape}]`);
      }
    });
    const clipped = this.clipGradients(vars.map((v, i) => ops.cast(grads[i]!, v.dtype)));
    vars.forEach((v, i) => {
      const g = clipped[i]!;
      let value: Tensor = v;
      // decoupled weight decay, applied before the update as Keras does
      if (this.weightDecay) value = ops.subtract(value, ops.multiply(value, ops.multiply(lr, this.weightDecay)));
      const slots = this.slotMap.get(v)!;
      const [nv, ns] = this.updateStep(g, value, slots, lr, step);
      out.push([v, nv]);
      slots.forEach((s, j) => out.push([s, ns[j]!]));
    });
    out.push([this.iterations, ops.add(this.iterations, 1)]);
    return out;
  }

  /** Applies (gradient, variable) pairs eagerly, as Keras's optimizer.apply_gradients. */
  applyGradients(pairs: Iterable<readonly [Tensor, Variable]>): void {
    const where = `${this.name}: applyGradients`;
    if (typeof (pairs as Partial<Iterable<unknown>>)?.[Symbol.iterator] !== 'function') throw new Error(`${where} takes a list of [gradient, variable] pairs, got ${describe(pairs)}`);
    const list = [...pairs].map((p, i): [Tensor, Variable] => {
      const v = Array.isArray(p) && p.length === 2 ? p[1] : undefined;
      if (!(v instanceof Variable)) throw new Error(`${where}: pair ${i} is not [gradient, variable]: ${Array.isArray(p) ? `its second element is ${describe(p[1])}` : `it is ${describe(p)}`}`);
      if (p[0] === undefined || p[0] === null) throw new Error(`${where}: no gradient for variable '${v.path}' (pair ${i})`);
      return [ops.convertToTensor(p[0]), v];
    });
    // inside a traced training step (a compiled custom trainStep) the new values are the step's updates
    const tr = currentTrace();
    noRecord(() => {
      const ups = this.updates(list.map((p) => p[0]), list.map((p) => p[1]));
      for (const [v, t] of ups) {
        if (tr?.stateUpdates.has(v)) throw new NotTraceableError(`it updates variable '${v.path}' twice`);
        if (tr) tr.update(v, t);
        else v.assign(t);
      }
    });
  }

  getConfig(): Record<string, unknown> {
    return {
      name: this.name, learningRate: this.schedule ? { className: this.schedule.constructor.name.replace(/Schedule$/, ''), config: this.schedule.getConfig() } : this.learningRate,
      weightDecay: this.weightDecay, clipnorm: this.clipnorm, clipvalue: this.clipvalue, globalClipnorm: this.globalClipnorm,
    };
  }
}

export interface SGDOptions extends OptimizerOptions {
  momentum?: number;
  nesterov?: boolean;
}

/** SGD: v = momentum v - lr g; w += v (nesterov: w += momentum v - lr g). */
export class SGDOptimizer extends Optimizer {
  static override readonly optionNames = { momentum: true, nesterov: true } satisfies OptionNames<SGDOptions, OptimizerOptions>;
  readonly momentum: number;
  readonly nesterov: boolean;
  constructor(options: SGDOptions = {}) {
    super('SGD', { learningRate: 0.01, ...options });
    this.momentum = options.momentum ?? 0;
    this.nesterov = options.nesterov ?? false;
    if (this.momentum < 0 || this.momentum > 1) throw new Error(`SGD: momentum must be in [0, 1], got ${this.momentum}`);
  }
  protected get slotNames(): string[] {
    return this.momentum ? ['momentum'] : [];
  }
  protected updateStep(g: Tensor, v: Tensor, slots: Tensor[], lr: Tensor): [Tensor, Tensor[]] {
    if (!this.momentum) return [ops.subtract(v, ops.multiply(g, lr)), []];
    const m = ops.subtract(ops.multiply(slots[0]!, this.momentum), ops.multiply(g, lr));
    const delta = this.nesterov ? ops.subtract(ops.multiply(m, this.momentum), ops.multiply(g, lr)) : m;
    return [ops.add(v, delta), [m]];
  }
}

export interface AdamOptions extends OptimizerOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

/** Adam with Keras 3's bias correction: alpha = lr sqrt(1 - b2^t) / (1 - b1^t); w -= alpha m / (sqrt(v) + eps). */
export class AdamOptimizer extends Optimizer {
  static override readonly optionNames = { beta1: true, beta2: true, epsilon: true } satisfies OptionNames<AdamOptions, OptimizerOptions>;
  static override readonly notImplemented = { amsgrad: false };
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  constructor(options: AdamOptions = {}, defaultName = 'adam') {
    super(defaultName, options);
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-7;
  }
  protected get slotNames(): string[] {
    return ['momentum', 'velocity'];
  }
  protected updateStep(g: Tensor, v: Tensor, [m0, v0]: Tensor[], lr: Tensor, step: Tensor): [Tensor, Tensor[]] {
    const b1p = ops.power(ops.full([], this.beta1), step), b2p = ops.power(ops.full([], this.beta2), step);
    const alpha = ops.divide(ops.multiply(lr, ops.sqrt(ops.subtract(1, b2p))), ops.subtract(1, b1p));
    const m = ops.add(m0!, ops.multiply(ops.subtract(g, m0!), 1 - this.beta1));
    const vel = ops.add(v0!, ops.multiply(ops.subtract(ops.square(g), v0!), 1 - this.beta2));
    const nv = ops.subtract(v, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(vel), this.epsilon)));
    return [nv, [m, vel]];
  }
  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}

/** Adam with decoupled weight decay (default 0.004, as Keras). */
export class AdamWOptimizer extends AdamOptimizer {
  constructor(options: AdamOptions = {}) {
    super({ weightDecay: 0.004, ...options }, 'adamw');
  }
}

export interface RMSpropOptions extends OptimizerOptions {
  rho?: number;
  momentum?: number;
  epsilon?: number;
  centered?: boolean;
}

/** RMSprop as Keras 3: velocity = rho v + (1 - rho) g^2; w -= lr g / sqrt(velocity + eps) (with optional momentum, centering). */
export class RMSpropOptimizer extends Optimizer {
  static override readonly optionNames = { rho: true, momentum: true, epsilon: true, centered: true } satisfies OptionNames<RMSpropOptions, OptimizerOptions>;
  readonly rho: number;
  readonly momentum: number;
  readonly epsilon: number;
  readonly centered: boolean;
  constructor(options: RMSpropOptions = {}) {
    super('rmsprop', options);
    this.rho = options.rho ?? 0.9;
    this.momentum = options.momentum ?? 0;
    this.epsilon = options.epsilon ?? 1e-7;
    this.centered = options.centered ?? false;
  }
  protected get slotNames(): string[] {
    return ['velocity', ...(this.momentum ? ['momentum'] : []), ...(this.centered ? ['average_gradient'] : [])];
  }
  protected updateStep(g: Tensor, v: Tensor, slots: Tensor[], lr: Tensor): [Tensor, Tensor[]] {
    const vel = ops.add(ops.multiply(slots[0]!, this.rho), ops.multiply(ops.square(g), 1 - this.rho));
    const newSlots = [vel];
    let denom = ops.add(vel, this.epsilon);
    if (this.centered) {
      const avg = ops.add(ops.multiply(slots[slots.length - 1]!, this.rho), ops.multiply(g, 1 - this.rho));
      denom = ops.add(ops.subtract(vel, ops.square(avg)), this.epsilon);
      newSlots.push(avg);
    }
    const inc = ops.divide(ops.multiply(g, lr), ops.sqrt(denom));
    if (!this.momentum) return [ops.subtract(v, inc), newSlots];
    const mom = ops.add(ops.multiply(slots[1]!, this.momentum), inc);
    return [ops.subtract(v, mom), [vel, mom, ...newSlots.slice(1)]];
  }
}

/** Throws unless v is undefined or a finite number >= 0. */
function checkRate(v: unknown, what: string): void {
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new Error(`${what} must be a non-negative number, got ${String(v)}`);
}

const BY_NAME: Record<string, () => Optimizer> = {
  sgd: () => new SGDOptimizer(), adam: () => new AdamOptimizer(), adamw: () => new AdamWOptimizer(), rmsprop: () => new RMSpropOptimizer(),
};

export type OptimizerIdentifier = string | Optimizer;

export function get(id: OptimizerIdentifier): Optimizer {
  if (id instanceof Optimizer) return id;
  const f = BY_NAME[id.toLowerCase()];
  if (!f) throw new Error(`unknown optimizer '${id}'; known: ${Object.keys(BY_NAME).join(', ')}`);
  return f();
}


// Keras names, constructible with or without `new`.
export const SGD = callableClass(SGDOptimizer);
export type SGD = SGDOptimizer;
export const Adam = callableClass(AdamOptimizer);
export type Adam = AdamOptimizer;
export const AdamW = callableClass(AdamWOptimizer);
export type AdamW = AdamWOptimizer;
export const RMSprop = callableClass(RMSpropOptimizer);
export type RMSprop = RMSpropOptimizer;
