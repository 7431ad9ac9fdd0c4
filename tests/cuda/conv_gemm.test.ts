// Implicit-GEMM convs on the GPU schedule (schedules/gpu_conv.ts, flatten.ts): a conv nest becomes a tiled matmul
// nest (register tiles, A's im2col tile, the taps' conditions and B's tile in shared memory); the loop interpreter
// (both orders) and the emulated CUDA build equal the graph interpreter bit for bit.
import { describe, expect, it } from 'vitest';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { schedule } from '../../codegen/loop/schedules/index.js';
import { parseGraph } from '../../ir/parser.js';
import { cudaLowered, expectMatchesGraph } from '../loop/schedules/gpu_helpers.js';

const convGraph = (n: number, h: number, c: number, co: number, k: number, pad: number, stride = 1) => {
  const oh = Math.floor((h + 2 * pad - k) / stride) + 1;
  return parseGraph(`graph @c {
  %0 = input {name="x"} : f32[${n},${h},${h},${c}]
  %1 = param {name="w"} : f32[${k},${k},${c},${co}]
  %2 = conv %0, %1 {dilation=[1, 1], groups=1, lhsDilation=[1, 1], padding=[[${pad}, ${pad}], [${pad}, ${pad}]], strides=[${stride}, ${stride}]} : f32[${n},${oh},${oh},${co}]
  output "y" = %2
}`);
};

describe('implicit-GEMM conv', () => {
  it('a 3x3 same conv is tiled and bit for bit', () => {
    const g = convGraph(2, 6, 3, 8, 3, 1);
    const p = schedule(cudaLowered(g), CUDA_CAPS);
    console.log(printProgram(p));
    expectMatchesGraph(g, p);
  });
});
