// int8 pooling in the quantize pass: max pooling on int8, average pooling rounded as TFLite's reference AveragePool,
// checked on the interpreter's integers of the layer before; pooled tensors stay int8 into the next layer.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { type Graph, type Node, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { calibrate, quantizeGraph } from '../../passes/quantize.js';
import { rng } from '../ir/helpers.js';

/** The model quantized on random calibration data, and one random input [2, 8, 8, 3]. */
function quantized(layers: keras.Layer[]): { g: Graph; x: Map<string, Float32Array>; params: Map<string, ArrayLike<number>> } {
  keras.utils.setRandomSeed(7);
  const model = keras.Sequential(layers);
  const { graph, variables } = traceModel(model, 2);
  const params = new Map(variables.map((v) => [v.path, v.data]));
  const r = rng(3), name = graph.inputs[0]!.attrs['name'] as string, rand = () => new Map([[name, Float32Array.from({ length: 2 * 8 * 8 * 3 }, () => Math.fround(4 * r() - 2))]]);
  const q = quantizeGraph(graph, params, calibrate(graph, params, [rand(), rand()]));
  return { g: q.graph, x: rand(), params: q.params };
}

/** The int8 values of the given nodes of g on x. */
function values(q: ReturnType<typeof quantized>, nodes: Node[]): ArrayLike<number>[] {
  const out = interpret({ ...q.g, outputs: nodes.map((node, i) => ({ name: `v${i}`, node })) }, q.x, q.params).outputs;
  return nodes.map((_, i) => out.get(`v${i}`)!.data);
}

/** TFLite reference AveragePool's rounding of an int32 sum over `count` values. */
const average = (sum: number, count: number) => Math.trunc(sum > 0 ? (sum + Math.floor(count / 2)) / count : (sum - Math.floor(count / 2)) / count);

describe('int8 pooling', () => {
  it('max pooling takes the max of the int8 conv outputs, and the next conv reads it as int8', () => {
    const q = quantized([keras.layers.Conv2D(4, 3, { padding: 'same', inputShape: [8, 8, 3] }), keras.layers.MaxPooling2D(2), keras.layers.Conv2D(5, 3), keras.layers.Flatten(), keras.layers.Dense(3)]);
    const order = topoSort(q.g), convs = order.filter((n) => n.op === 'qconv'), pool = order.find((n) => n.op === 'reduce_window')!;
    expect(pool.type.dtype).toBe('int8');
    expect(convs[1]!.src[0]).toBe(pool);
    expect(order.filter((n) => n.op === 'quantize' || n.op === 'dequantize')).toHaveLength(2); // the input and the logits: Flatten moves int8 too
    const [c, p] = values(q, [convs[0]!, pool]);
    for (let b = 0; b < 2; b++) for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let ch = 0; ch < 4; ch++) {
      const at = (y: number, x: number) => c![((b * 8 + y) * 8 + x) * 4 + ch]!;
      expect(p![((b * 4 + i) * 4 + j) * 4 + ch]).toBe(Math.max(at(2 * i, 2 * j), at(2 * i, 2 * j + 1), at(2 * i + 1, 2 * j), at(2 * i + 1, 2 * j + 1)));
    }
  });

  it('average pooling and global average pooling round the int8 sums half away from zero', () => {
    const q = quantized([keras.layers.Conv2D(6, 3, { padding: 'same', inputShape: [8, 8, 3] }), keras.layers.AveragePooling2D(2), keras.layers.Conv2D(4, 1), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]);
    const order = topoSort(q.g), convs = order.filter((n) => n.op === 'qconv'), mm = order.find((n) => n.op === 'qmatmul')!;
    expect(convs[1]!.src[0]!.type.dtype).toBe('int8');
    expect(mm.src[0]!.type.dtype).toBe('int8');
    const [c0, p0, c1, p1] = values(q, [convs[0]!, convs[1]!.src[0]!, convs[1]!, mm.src[0]!]);
    let ties = 0;
    for (let b = 0; b < 2; b++) for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let ch = 0; ch < 6; ch++) {
      const at = (y: number, x: number) => c0![((b * 8 + y) * 8 + x) * 6 + ch]!;
      const sum = at(2 * i, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j) + at(2 * i + 1, 2 * j + 1);
      if (Math.abs(sum % 4) === 2) ties++;
      expect(p0![((b * 4 + i) * 4 + j) * 6 + ch]).toBe(average(sum, 4));
    }
    expect(ties).toBeGreaterThan(0);
    for (let b = 0; b < 2; b++) for (let ch = 0; ch < 4; ch++) {
      let sum = 0;
      for (let k = 0; k < 16; k++) sum += c1![(b * 16 + k) * 4 + ch]!;
      expect(p1![b * 4 + ch]).toBe(average(sum, 16));
    }
  });

  it('average pooling with same padding (a count per position) stays float32', () => {
    const q = quantized([keras.layers.Conv2D(4, 3, { inputShape: [8, 8, 3] }), keras.layers.AveragePooling2D(3, { strides: 2, padding: 'same' }), keras.layers.Flatten(), keras.layers.Dense(3)]);
    expect(topoSort(q.g).find((n) => n.op === 'reduce_window')!.type.dtype).toBe('float32');
  });
});
