// keras.optimizers.schedules: learning rates as functions of the optimizer's step, in ops (computed inside the training step).
import { callableClass } from './callable.js';
import { noRecord } from './engine.js';
import { describe } from './errors.js';
import * as ops from './ops.js';
import { type OptionNames, checkOptions } from './options.js';
import type { Tensor } from './tensor.js';

/**
 * A learning-rate schedule: `call(step)` maps the optimizer's iteration count before the update (0 at the first step,
 * a float32 scalar, eager or traced) to the learning rate, as Keras's `LearningRateSchedule.__call__`. Subclass it and
 * implement `call` with ops for a custom schedule.
 */
export abstract class LearningRateSchedule {
  abstract call(step: Tensor): Tensor;

  /** The learning rate at an integer step, on the host. */
  valueAt(step: number): number {
    return noRecord(() => this.call(ops.full([], step)).item());
  }

  abstract getConfig(): Record<string, unknown>;
}

function where(cls: string): string {
  return `optimizers.schedules.${cls}`;
}

function number(v: unknown, what: string, test: (x: number) => boolean, need: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !test(v)) throw new Error(`${what} must be ${need}, got ${describe(v)}`);
  return v;
}

const positive = (x: number) => x > 0;
const any = () => true;

export interface ExponentialDecayOptions {
  initialLearningRate: number;
  /** Steps per decay by decayRate (> 0). */
  decaySteps: number;
  decayRate: number;
  /** Decay in whole steps of decaySteps (floor(step / decaySteps)). */
  staircase?: boolean;
  name?: string;
}

/** lr = initialLearningRate * decayRate ^ (step / decaySteps), the exponent floored with staircase (keras/src/optimizers/schedules/learning_rate_schedule.py). */
export class ExponentialDecaySchedule extends LearningRateSchedule {
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly decayRate: number;
  readonly staircase: boolean;
  readonly name: string;
  constructor(options: ExponentialDecayOptions) {
    super();
    const w = where('ExponentialDecay');
    checkOptions(options, { initialLearningRate: true, decaySteps: true, decayRate: true, staircase: true, name: true } satisfies OptionNames<ExponentialDecayOptions>, w);
    if (!options) throw new Error(`${w} needs { initialLearningRate, decaySteps, decayRate }`);
    this.initialLearningRate = number(options.initialLearningRate, `${w}: initialLearningRate`, any, 'a number');
    this.decaySteps = number(options.decaySteps, `${w}: decaySteps`, positive, 'a number > 0');
    this.decayRate = number(options.decayRate, `${w}: decayRate`, any, 'a number');
    if (options.staircase !== undefined && typeof options.staircase !== 'boolean') throw new Error(`${w}: staircase must be true or false, got ${describe(options.staircase)}`);
    this.staircase = options.staircase ?? false;
    this.name = options.name ?? 'ExponentialDecay';
  }
  call(step: Tensor): Tensor {
    let p = ops.divide(step, this.decaySteps);
    if (this.staircase) p = ops.floor(p);
    return ops.multiply(ops.power(ops.full([], this.decayRate), p), this.initialLearningRate);
  }
  getConfig(): Record<string, unknown> {
    return { initialLearningRate: this.initialLearningRate, decaySteps: this.decaySteps, decayRate: this.decayRate, staircase: this.staircase, name: this.name };
  }
}

export interface CosineDecayOptions {
  initialLearningRate: number;
  /** Steps of the cosine decay (after the warmup), > 0. */
  decaySteps: number;
  /** The floor, as a fraction of the starting rate (default 0). */
  alpha?: number;
  name?: string;
  /** With it, the rate rises linearly from initialLearningRate to warmupTarget over warmupSteps, then decays from it. */
  warmupTarget?: number | null;
  warmupSteps?: number;
}

/**
 * Keras's CosineDecay: with s = min(step, decaySteps), lr = initial * ((1 - alpha) * 0.5 (1 + cos(pi s / decaySteps)) + alpha);
 * with a warmupTarget, s = min(step, decaySteps + warmupSteps), linear warmup below warmupSteps, then the decay of
 * s - warmupSteps from warmupTarget (keras/src/optimizers/schedules/learning_rate_schedule.py).
 */
export class CosineDecaySchedule extends LearningRateSchedule {
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly alpha: number;
  readonly name: string;
  readonly warmupTarget: number | null;
  readonly warmupSteps: number;
  constructor(options: CosineDecayOptions) {
    super();
    const w = where('CosineDecay');
    checkOptions(options, { initialLearningRate: true, decaySteps: true, alpha: true, name: true, warmupTarget: true, warmupSteps: true } satisfies OptionNames<CosineDecayOptions>, w);
    if (!options) throw new Error(`${w} needs { initialLearningRate, decaySteps }`);
    this.initialLearningRate = number(options.initialLearningRate, `${w}: initialLearningRate`, any, 'a number');
    this.decaySteps = number(options.decaySteps, `${w}: decaySteps`, positive, 'a number > 0');
    this.alpha = options.alpha === undefined ? 0 : number(options.alpha, `${w}: alpha`, any, 'a number');
    this.name = options.name ?? 'CosineDecay';
    this.warmupTarget = options.warmupTarget === undefined || options.warmupTarget === null ? null : number(options.warmupTarget, `${w}: warmupTarget`, any, 'a number');
    this.warmupSteps = options.warmupSteps === undefined ? 0 : number(options.warmupSteps, `${w}: warmupSteps`, (x) => x >= 0, 'a number >= 0');
    if (this.warmupTarget !== null && this.warmupSteps === 0) throw new Error(`${w}: warmupTarget needs warmupSteps > 0`);
  }
  private decay(step: Tensor, from: number): Tensor {
    const cosine = ops.multiply(ops.add(ops.cos(ops.multiply(ops.divide(step, this.decaySteps), Math.PI)), 1), 0.5);
    return ops.multiply(ops.add(ops.multiply(cosine, 1 - this.alpha), this.alpha), from);
  }
  call(step: Tensor): Tensor {
    if (this.warmupTarget === null) return this.decay(ops.minimum(step, this.decaySteps), this.initialLearningRate);
    const s = ops.minimum(step, this.decaySteps + this.warmupSteps);
    const warm = ops.add(ops.multiply(ops.divide(s, this.warmupSteps), this.warmupTarget - this.initialLearningRate), this.initialLearningRate);
    return ops.where(ops.less(s, this.warmupSteps), warm, this.decay(ops.subtract(s, this.warmupSteps), this.warmupTarget));
  }
  getConfig(): Record<string, unknown> {
    return { initialLearningRate: this.initialLearningRate, decaySteps: this.decaySteps, alpha: this.alpha, name: this.name, warmupTarget: this.warmupTarget, warmupSteps: this.warmupSteps };
  }
}

export interface PiecewiseConstantDecayOptions {
  /** Increasing step boundaries. */
  boundaries: readonly number[];
  /** One more value than boundaries: values[0] for step <= boundaries[0], values[i] for boundaries[i-1] < step <= boundaries[i], the last beyond. */
  values: readonly number[];
  name?: string;
}

/** Keras's PiecewiseConstantDecay: the sum of values[i] times the indicator of step's interval (learning_rate_schedule.py). */
export class PiecewiseConstantDecaySchedule extends LearningRateSchedule {
  readonly boundaries: readonly number[];
  readonly values: readonly number[];
  readonly name: string;
  constructor(options: PiecewiseConstantDecayOptions) {
    super();
    const w = where('PiecewiseConstantDecay');
    checkOptions(options, { boundaries: true, values: true, name: true } satisfies OptionNames<PiecewiseConstantDecayOptions>, w);
    const { boundaries, values } = options ?? {};
    const list = (v: unknown, what: string) => {
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw new Error(`${w}: ${what} must be a list of numbers, got ${describe(v)}`);
      return [...v] as number[];
    };
    this.boundaries = list(boundaries, 'boundaries');
    this.values = list(values, 'values');
    if (this.boundaries.length === 0 || this.values.length !== this.boundaries.length + 1) {
      throw new Error(`${w}: needs one more value than boundaries and at least one boundary, got ${this.boundaries.length} boundaries and ${this.values.length} values`);
    }
    if (this.boundaries.some((b, i) => i > 0 && b <= this.boundaries[i - 1]!)) throw new Error(`${w}: boundaries must increase, got [${this.boundaries.join(', ')}]`);
    this.name = options.name ?? 'PiecewiseConstant';
  }
  call(step: Tensor): Tensor {
    const b = this.boundaries, v = this.values;
    const ind = (c: Tensor) => ops.cast(c, 'float32');
    let r = ops.add(ops.multiply(ind(ops.lessEqual(step, b[0]!)), v[0]!), ops.multiply(ind(ops.greater(step, b[b.length - 1]!)), v[v.length - 1]!));
    for (let i = 1; i < b.length; i++) {
      r = ops.add(r, ops.multiply(ind(ops.logicalAnd(ops.greater(step, b[i - 1]!), ops.lessEqual(step, b[i]!))), v[i]!));
    }
    return r;
  }
  getConfig(): Record<string, unknown> {
    return { boundaries: [...this.boundaries], values: [...this.values], name: this.name };
  }
}

export interface PolynomialDecayOptions {
  initialLearningRate: number;
  /** Steps to reach endLearningRate (> 0). */
  decaySteps: number;
  /** Default 0.0001. */
  endLearningRate?: number;
  /** Default 1 (linear). */
  power?: number;
  /** Restart the decay after each decaySteps·k (the first multiple above the step) instead of staying at the end. */
  cycle?: boolean;
  name?: string;
}

/**
 * Keras's PolynomialDecay: p = min(step, decaySteps) / decaySteps (with cycle, step / (decaySteps·max(1, ceil(step /
 * decaySteps)))), lr = (initial - end) (1 - p)^power + end (learning_rate_schedule.py).
 */
export class PolynomialDecaySchedule extends LearningRateSchedule {
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly endLearningRate: number;
  readonly power: number;
  readonly cycle: boolean;
  readonly name: string;
  constructor(options: PolynomialDecayOptions) {
    super();
    const w = where('PolynomialDecay');
    checkOptions(options, { initialLearningRate: true, decaySteps: true, endLearningRate: true, power: true, cycle: true, name: true } satisfies OptionNames<PolynomialDecayOptions>, w);
    if (!options) throw new Error(`${w} needs { initialLearningRate, decaySteps }`);
    this.initialLearningRate = number(options.initialLearningRate, `${w}: initialLearningRate`, any, 'a number');
    this.decaySteps = number(options.decaySteps, `${w}: decaySteps`, positive, 'a number > 0');
    this.endLearningRate = options.endLearningRate === undefined ? 0.0001 : number(options.endLearningRate, `${w}: endLearningRate`, any, 'a number');
    this.power = options.power === undefined ? 1 : number(options.power, `${w}: power`, any, 'a number');
    this.cycle = boolean(options.cycle, `${w}: cycle`);
    this.name = options.name ?? 'PolynomialDecay';
  }
  call(step: Tensor): Tensor {
    let s = step, decaySteps: Tensor | number = this.decaySteps;
    // with cycle: the first multiple of decaySteps above the step (1 at step 0)
    if (this.cycle) decaySteps = ops.multiply(this.decaySteps, ops.where(ops.equal(step, 0), 1, ops.ceil(ops.divide(step, this.decaySteps))));
    else s = ops.minimum(step, this.decaySteps);
    const p = ops.divide(s, decaySteps);
    return ops.add(ops.multiply(this.initialLearningRate - this.endLearningRate, ops.power(ops.subtract(1, p), this.power)), this.endLearningRate);
  }
  getConfig(): Record<string, unknown> {
    return { initialLearningRate: this.initialLearningRate, decaySteps: this.decaySteps, endLearningRate: this.endLearningRate, power: this.power, cycle: this.cycle, name: this.name };
  }
}

export interface InverseTimeDecayOptions {
  initialLearningRate: number;
  /** Steps per unit of decay (> 0). */
  decaySteps: number;
  decayRate: number;
  /** Decay in whole steps of decaySteps (floor(step / decaySteps)). */
  staircase?: boolean;
  name?: string;
}

/** Keras's InverseTimeDecay: lr = initial / (1 + decayRate · step / decaySteps), the ratio floored with staircase. */
export class InverseTimeDecaySchedule extends LearningRateSchedule {
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly decayRate: number;
  readonly staircase: boolean;
  readonly name: string;
  constructor(options: InverseTimeDecayOptions) {
    super();
    const w = where('InverseTimeDecay');
    checkOptions(options, { initialLearningRate: true, decaySteps: true, decayRate: true, staircase: true, name: true } satisfies OptionNames<InverseTimeDecayOptions>, w);
    if (!options) throw new Error(`${w} needs { initialLearningRate, decaySteps, decayRate }`);
    this.initialLearningRate = number(options.initialLearningRate, `${w}: initialLearningRate`, any, 'a number');
    this.decaySteps = number(options.decaySteps, `${w}: decaySteps`, positive, 'a number > 0');
    this.decayRate = number(options.decayRate, `${w}: decayRate`, any, 'a number');
    this.staircase = boolean(options.staircase, `${w}: staircase`);
    this.name = options.name ?? 'InverseTimeDecay';
  }
  call(step: Tensor): Tensor {
    let p = ops.divide(step, this.decaySteps);
    if (this.staircase) p = ops.floor(p);
    return ops.divide(this.initialLearningRate, ops.add(1, ops.multiply(this.decayRate, p)));
  }
  getConfig(): Record<string, unknown> {
    return { initialLearningRate: this.initialLearningRate, decaySteps: this.decaySteps, decayRate: this.decayRate, staircase: this.staircase, name: this.name };
  }
}

export interface CosineDecayRestartsOptions {
  initialLearningRate: number;
  /** Steps of the first period (> 0). */
  firstDecaySteps: number;
  /** Each period is tMul times the previous one (default 2). */
  tMul?: number;
  /** Each restart starts at mMul times the previous start (default 1). */
  mMul?: number;
  /** The floor, as a fraction of the starting rate (default 0). */
  alpha?: number;
  name?: string;
}

/**
 * Keras's CosineDecayRestarts (SGDR): f = step / firstDecaySteps; the restart i = floor(f) (tMul = 1) or
 * floor(log(1 - f (1 - tMul)) / log(tMul)), f its fraction done; lr = initial ((1 - alpha) 0.5 mMul^i (1 + cos(pi f)) + alpha).
 */
export class CosineDecayRestartsSchedule extends LearningRateSchedule {
  readonly initialLearningRate: number;
  readonly firstDecaySteps: number;
  readonly tMul: number;
  readonly mMul: number;
  readonly alpha: number;
  readonly name: string;
  constructor(options: CosineDecayRestartsOptions) {
    super();
    const w = where('CosineDecayRestarts');
    checkOptions(options, { initialLearningRate: true, firstDecaySteps: true, tMul: true, mMul: true, alpha: true, name: true } satisfies OptionNames<CosineDecayRestartsOptions>, w);
    if (!options) throw new Error(`${w} needs { initialLearningRate, firstDecaySteps }`);
    this.initialLearningRate = number(options.initialLearningRate, `${w}: initialLearningRate`, any, 'a number');
    this.firstDecaySteps = number(options.firstDecaySteps, `${w}: firstDecaySteps`, positive, 'a number > 0');
    this.tMul = options.tMul === undefined ? 2 : number(options.tMul, `${w}: tMul`, positive, 'a number > 0');
    this.mMul = options.mMul === undefined ? 1 : number(options.mMul, `${w}: mMul`, any, 'a number');
    this.alpha = options.alpha === undefined ? 0 : number(options.alpha, `${w}: alpha`, any, 'a number');
    this.name = options.name ?? 'SGDRDecay';
  }
  call(step: Tensor): Tensor {
    let f = ops.divide(step, this.firstDecaySteps), i: Tensor;
    if (this.tMul === 1) {
      i = ops.floor(f);
      f = ops.subtract(f, i);
    } else {
      const t = this.tMul;
      i = ops.floor(ops.divide(ops.log(ops.subtract(1, ops.multiply(f, 1 - t))), Math.fround(Math.log(t))));
      const sum = ops.divide(ops.subtract(1, ops.power(t, i)), 1 - t);
      f = ops.divide(ops.subtract(f, sum), ops.power(t, i));
    }
    const cosine = ops.multiply(ops.multiply(0.5, ops.power(this.mMul, i)), ops.add(1, ops.cos(ops.multiply(Math.PI, f))));
    return ops.multiply(this.initialLearningRate, ops.add(ops.multiply(1 - this.alpha, cosine), this.alpha));
  }
  getConfig(): Record<string, unknown> {
    return { initialLearningRate: this.initialLearningRate, firstDecaySteps: this.firstDecaySteps, tMul: this.tMul, mMul: this.mMul, alpha: this.alpha, name: this.name };
  }
}

function boolean(v: unknown, what: string): boolean {
  if (v !== undefined && typeof v !== 'boolean') throw new Error(`${what} must be true or false, got ${describe(v)}`);
  return v ?? false;
}

// Keras names, constructible with or without `new`.
export const ExponentialDecay = callableClass(ExponentialDecaySchedule);
export type ExponentialDecay = ExponentialDecaySchedule;
export const CosineDecay = callableClass(CosineDecaySchedule);
export type CosineDecay = CosineDecaySchedule;
export const PiecewiseConstantDecay = callableClass(PiecewiseConstantDecaySchedule);
export type PiecewiseConstantDecay = PiecewiseConstantDecaySchedule;
export const PolynomialDecay = callableClass(PolynomialDecaySchedule);
export type PolynomialDecay = PolynomialDecaySchedule;
export const InverseTimeDecay = callableClass(InverseTimeDecaySchedule);
export type InverseTimeDecay = InverseTimeDecaySchedule;
export const CosineDecayRestarts = callableClass(CosineDecayRestartsSchedule);
export type CosineDecayRestarts = CosineDecayRestartsSchedule;
