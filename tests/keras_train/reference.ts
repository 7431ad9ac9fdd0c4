// Keras 3's numbers for tests/keras_train (keras_reference.json, written by make_reference.py), and a closeness check.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';

export interface Fit {
  history: Record<string, number[]>;
  weights: number[][];
  evaluate_weighted: Record<string, number>;
}

export interface Reference {
  keras_version: string;
  schedules: Record<string, { options: Record<string, unknown>; values: number[] }>;
  fit_data: { x: number[]; y: number[]; sampleWeight: number[]; weights: number[][] };
  fits: Record<string, Fit>;
  metric_data: { yTrue: number[]; yPred: number[]; sampleWeight: number[] };
  metrics: Record<string, { options: Record<string, unknown>; result: number; weighted: number }>;
  topk_data: { yTrue: number[]; yPred: number[] };
  topk: Record<string, number>;
  callback_logs: { val_loss: number[]; accuracy: number[] };
  early_stopping: Record<string, { options: Record<string, unknown>; stopped: number | null; best_epoch: number }>;
  reduce_lr: Record<string, { options: Record<string, unknown>; lr: number[] }>;
}

export const ref = JSON.parse(readFileSync(path.join(import.meta.dirname, 'keras_reference.json'), 'utf8')) as Reference;

/** keras_reference2.json (make_reference2.py): masks in losses and metrics, and the later Keras idioms. */
export interface Reference2 {
  keras_version: string;
  mask_data: { x: number[]; yBinary: number[]; ySparse: number[] };
  mask_fits: Record<string, { weights0: number[][]; shapes: number[][]; pred0: number[]; evaluate0: Record<string, number>; history: Record<string, number[]>; history_masked_metrics: Record<string, number[]>; weights: number[][] }>;
  mask_eager: { weights: number[][]; losses: Record<string, number>; binary_accuracy: number };
  schedules: Record<string, { options: Record<string, unknown>; values: number[] }>;
  multi_data: { yTrue: number[]; yPred: number[]; sampleWeight: number[] };
  multi_metrics: Record<string, { class: 'Precision' | 'Recall' | 'AUC'; options: Record<string, unknown>; result: number; weighted: number }>;
  hooks: { fit: string[]; evaluate: string[]; predict: string[] };
  per_output: { x: number[]; ya: number[]; yb: number[]; swa: number[]; swb: number[]; weights0: number[][]; history: Record<string, number[]>; weights: number[][]; evaluate: Record<string, number> };
}

export const ref2 = JSON.parse(readFileSync(path.join(import.meta.dirname, 'keras_reference2.json'), 'utf8')) as Reference2;

/** Keras's snake_case option names as kiln's camelCase ones. */
export function camel(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), v]));
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-6, what = ''): void {
  expect(actual.length, what).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= atol + rtol * Math.abs(expected[i]!))) expect.fail(`${what}[${i}]: ${actual[i]} vs Keras ${expected[i]} (error ${err})`);
  }
}
