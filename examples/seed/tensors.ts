// Seed: 张量操作 and 常用张量操作 — tensor creation, shape, reshape, transpose, matmul, add, mean, sum.
import * as keras from 'kiln';

const x = keras.ops.array([[1, 2, 3], [4, 5, 6]]);
console.log(`形状: ${keras.ops.shape(x)}`);
console.log(`数据类型: ${x.dtype}`);
console.log(`维度: ${keras.ops.ndim(x)}`);
const y = keras.ops.reshape(x, [3, 2]);
console.log(`重塑后: ${y}`);
const z = keras.ops.transpose(x);
console.log(`转置后: ${z}`);

const a = keras.ops.array([[1, 2], [3, 4]]);
const b = keras.ops.array([[5, 6], [7, 8]]);
console.log(`${keras.ops.matmul(a, b)}`);
console.log(`${keras.ops.add(a, b)}`);
console.log(`${keras.ops.mean(a)}`);
console.log(`${keras.ops.sum(a, { axis: 0 })}`);
