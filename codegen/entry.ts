// An entry point every target compiles: the traced graph of predict or of the training step.
import type { Graph } from '../ir/graph.js';

export interface TargetEntry {
  readonly name: 'predict' | 'trainStep';
  readonly graph: Graph;
  readonly batchSize: number;
}
