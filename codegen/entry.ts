// An entry point every target compiles: the traced graph of predict or of the training step.
import type { Graph } from '../ir/graph.js';

export interface TargetEntry {
  readonly name: 'predict' | 'trainStep';
  readonly graph: Graph;
  readonly batchSize: number;
}

/** A model input or output as manifests list it (null: the batch dimension). */
export interface IoSpec {
  readonly name: string;
  readonly shape: readonly (number | null)[];
  readonly dtype: string;
}
