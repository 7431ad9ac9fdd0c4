// dce: drops nodes that no output or update reaches (inputs and params stay: they are the signature).
import { type Graph, rebuild } from '../ir/graph.js';

export function dce(g: Graph): Graph {
  return rebuild(g, () => undefined);
}
