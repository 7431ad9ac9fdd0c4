import { parseGraph } from './ir/parser.js';
import { printProgram } from './codegen/loop/printer.js';
import { runPipeline } from './driver/pipeline.js';
import { CUDA_CAPS } from './codegen/cuda/target.js';
import { launchShapes } from './codegen/loop/gpu.js';
import { expectMatchesGraph } from './tests/loop/schedules/gpu_helpers.js';
const [M, K, N] = process.argv.slice(2).map(Number);
const g = parseGraph(`graph @m {
  %0 = input {name="x"} : f32[${M},${K}]
  %1 = param {name="w"} : f32[${K},${N}]
  %2 = matmul %0, %1 : f32[${M},${N}]
  %3 = tanh %2 : f32[${M},${N}]
  output "y" = %3
}`);
const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program;
if (process.env.SHOW) console.log(printProgram(p));
console.log(JSON.stringify(launchShapes(p)));
