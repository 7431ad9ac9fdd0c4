// dce: drops nodes no output or update reaches (inputs and params stay: they are the signature) by a rebuild through
// the interning builder, which also merges structurally equal nodes and numbers the nodes afresh. The other graph
// passes rebuild the same way, so what is left to it is what they leave behind: nodes made unreachable (empty drops
// updates and operands) and the gaps they leave in the numbering, from which lowering names buffers (tmp_<id>).
// It is the final graph stage (`--dump-after dce`); a separate cse pass was this same function and is gone. It also
// merges a scan loop into the copy autodiff extended with saved activations (passes/scan_merge.ts).
import { type Graph, rebuild } from '../ir/graph.js';
import { mergeScans } from './scan_merge.js';

export function dce(g: Graph): Graph {
  return rebuild(g, mergeScans(g));
}
