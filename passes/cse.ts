// cse: merges structurally equal nodes (rebuilding through the hash-consing builder).
import { type Graph, rebuild } from '../ir/graph.js';

export function cse(g: Graph): Graph {
  return rebuild(g, () => undefined);
}
