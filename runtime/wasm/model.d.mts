// kiln's wasm loader types, copied into every wasm artifact as model.d.mts (without trainStep when it has no training step).
export type KilnArray = Float32Array | Int32Array | Uint8Array | Int8Array;
export type KilnDType = 'float32' | 'int32' | 'bool' | 'int8';
export interface KilnTensorSpec {
  name: string;
  /** null: the batch axis, any number of rows */
  shape: (number | null)[];
  dtype: KilnDType;
}
export interface KilnManifest {
  target: 'wasm';
  inputs: KilnTensorSpec[];
  outputs: KilnTensorSpec[];
  params: { name: string; shape: number[]; dtype: KilnDType }[];
  /** The rows predict runs at once (more run in chunks), or null when it takes exactly its batch size (fixedRows says why). */
  maxBatch: number | null;
  fixedRows?: string;
  arenaBytes: number;
  memoryBytes: number;
  entries: Record<string, { batchSize: number; anyRows: boolean; arenaBytes: number; kernels: { name: string; ops: string[] }[] }>;
}
export interface KilnModel {
  readonly manifest: KilnManifest;
  /** Runs inference on any number of rows: inputs in manifest order (n rows each, row-major), outputs in manifest order (n rows each). */
  predict(inputs: readonly ArrayLike<number>[]): KilnArray[];
  /** One training step: inputs, then one target per output, then the int32 rng counter if the model uses dropout; returns loss first. 1 to batchSize rows where the trainStep has a "rows" input (a last, smaller batch, as Keras trains it; pred outputs keep those rows), else exactly batchSize. */
  trainStep(inputs: readonly ArrayLike<number>[]): KilnArray[];
  /** Current parameter values by name (weights, and optimizer state when compiled with --train). */
  getWeights(): Map<string, KilnArray>;
  /** Threads its parallel loops run on. */
  readonly threads: number;
  /** Whether its micro-kernels accumulate with f32x4.relaxed_madd (the relaxed-SIMD build). */
  readonly relaxedSimd: boolean;
  /** Ends the worker threads (nothing with one thread); the model is unusable after. */
  close(): void;
}
export interface KilnLoadOptions {
  /** Where model.wasm is (default: beside model.mjs). */
  wasm?: URL;
  /** Where weights.safetensors is (default: beside model.mjs), or its bytes. */
  weights?: URL | Uint8Array;
  /**
   * Threads to run parallel loops on, results bit-identical to one thread (default: every core in Node; in a browser
   * every core when crossOriginIsolated, else 1). More than one loads model-threads.wasm from beside model.wasm
   * over a shared memory, with model.worker.mjs from beside model.mjs as each worker's script.
   */
  threads?: number;
  /**
   * The relaxed-SIMD build, model-relaxed.wasm (with threads model-threads-relaxed.wasm): its matmul and conv
   * micro-kernels accumulate with f32x4.relaxed_madd, fused multiply-adds where the CPU has FMA, so results may
   * differ from the interpreter's (and the SIMD128 build's, which are exact) in the last bits of every accumulation
   * step. Default: where the engine has relaxed SIMD (current browsers; Node 20 with --experimental-wasm-relaxed-simd).
   */
  relaxedSimd?: boolean;
}
/** Instantiates model.wasm and loads its weights. */
export function load(options?: KilnLoadOptions): Promise<KilnModel>;
/** Parses a safetensors file strictly; `where` names it in errors. Tensors of dtypes other than F32, I32, BOOL and I8 are checked and left out. */
export function readSafetensors(file: Uint8Array, where?: string): {
  tensors: { name: string; dtype: KilnDType; shape: number[]; bytes: Uint8Array }[];
  metadata: Record<string, string>;
};
/** The bytes of each param's tensor, checked against its dtype and shape. */
export function paramTensors(file: Uint8Array, params: readonly { name: string; dtype: KilnDType; shape: readonly number[] }[], where?: string): Map<string, Uint8Array>;
