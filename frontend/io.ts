// `kiln/io`: the .npy and safetensors readers and writers that kiln's artifacts use, for feeding them from user code.
export { readNpy, writeNpy } from '../runtime/npy.js';
export { readSafetensors, writeSafetensors } from '../runtime/safetensors.js';
export type { NamedTensor, TensorSpec } from '../runtime/safetensors.js';
