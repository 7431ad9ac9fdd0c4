// kiln's wasm loader, copied into every wasm artifact as model.mjs with the layout and manifest filled in.
// Loads model.wasm in Node or a browser: const m = await load(); const [y] = m.predict([x]);
const LAYOUT = /* kiln:LAYOUT */ {};
const MANIFEST = /* kiln:MANIFEST */ { params: [] };
const EMBEDDED = /* kiln:EMBEDDED */ false;
// module "math": JS Math's functions by name (a module imports those its ops call), C pow and integer pow;
// module "kiln": parallel(chunk, n), replaced by the thread pool's where the module runs on threads
const imports = { math: {
  ...Object.fromEntries(Object.getOwnPropertyNames(Math).filter((k) => typeof Math[k] === 'function').map((k) => [k, Math[k]])),
  pow: (a, b) => (a === 1 || (a === -1 && Math.abs(b) === Infinity) ? 1 : Math.pow(a, b)),
  ipow: (a, b) => { if (b < 0) return 0; let r = 1; for (; b > 0; b >>= 1) { if (b & 1) r = Math.imul(r, a); a = Math.imul(a, a); } return r; },
}, kiln: { parallel: () => 0 } }; // kiln.parallel: 0, one thread (the module runs the loop itself)
const ARRAYS = { float32: Float32Array, int32: Int32Array, bool: Uint8Array, int8: Int8Array };

async function bytesOf(url) {
  if (url.protocol === 'file:') {
    const fs = await import('node:fs/promises');
    try {
      return new Uint8Array(await fs.readFile(url));
    } catch (e) {
      throw new Error(`kiln: cannot read ${url.href}: ${e.message}`);
    }
  }
  let r;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new Error(`kiln: cannot fetch ${url.href}: ${e.message}`);
  }
  if (!r.ok) throw new Error(`kiln: cannot fetch ${url.href}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// Safetensors as the reference parser (huggingface/safetensors) reads it: an 8-byte little-endian header length, a
// JSON object header, then the tensors' bytes, which the data_offsets cover exactly, in order from 0, without
// gaps or overlaps; a tensor entry's fields other than dtype, shape and data_offsets are ignored, as there. Every
// problem is one Error line naming the tensor.

/** Every dtype of the format with its bits per element, and the three kiln reads. */
const SAFETENSORS_BITS = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32, F64: 64, I64: 64, U64: 64, C64: 64,
};
const KILN_DTYPES = { F32: 'float32', I32: 'int32', BOOL: 'bool', I8: 'int8' };
const CODES = { float32: 'F32', int32: 'I32', bool: 'BOOL', int8: 'I8' };
/** The reference parser's limit on the header's length. */
const MAX_HEADER = 100000000;

/** The first key that one JSON object of valid JSON text holds twice (JSON.parse keeps only the last). */
function duplicateKey(text) {
  const objects = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') objects.push(new Set());
    else if (c === '[') objects.push(null);
    else if (c === '}' || c === ']') objects.pop();
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      let k = j + 1;
      while (' \t\n\r'.includes(text[k])) k++;
      if (text[k] === ':') {
        const key = JSON.parse(text.slice(i, j + 1)), keys = objects[objects.length - 1];
        if (keys.has(key)) return key;
        keys.add(key);
      }
      i = j;
    }
  }
  return undefined;
}

/**
 * The numbers of each tensor's shape and data_offsets as the JSON text writes them, by tensor name: JSON.parse
 * reads `1.0`, `1e0` and `-0` as integers, which the reference parser (serde, into usize) refuses.
 */
function indexTexts(text) {
  const out = new Map();
  const keys = []; // the key each open object or array is the value of
  let key;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') {
      keys.push(key);
      key = undefined;
    } else if (c === '}' || c === ']') {
      keys.pop();
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      let k = j + 1;
      while (' \t\n\r'.includes(text[k])) k++;
      if (text[k] === ':') key = JSON.parse(text.slice(i, j + 1));
      i = j;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i;
      const token = NUMBER.exec(text)[0];
      const [, name, field] = keys;
      if (keys.length === 3 && name !== undefined && (field === 'shape' || field === 'data_offsets')) {
        const fields = out.get(name) ?? {};
        out.set(name, fields);
        (fields[field] ??= []).push(token);
      }
      i += token.length - 1;
    }
  }
  return out;
}

const NUMBER = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
/** A number as JSON writes a non-negative integer: no sign, fraction or exponent. */
const plainIndex = (token) => /^(0|[1-9][0-9]*)$/.test(token);
const isIndex = (v) => Number.isSafeInteger(v) && v >= 0;
const show = (v) => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v));

/**
 * Parses safetensors bytes strictly; `where` names the file in errors. Returns the tensors of the dtypes kiln reads
 * in file order as { name, dtype, shape, bytes } (bytes a view of the input; tensors of other dtypes are checked and
 * ignored) and the string metadata.
 */
export function readSafetensors(file, where = 'weights') {
  const { entries, metadata, base } = parse(file, where);
  return {
    tensors: entries.filter((e) => KILN_DTYPES[e.code]).map((e) => ({ name: e.name, dtype: KILN_DTYPES[e.code], shape: e.shape, bytes: file.subarray(base + e.begin, base + e.end) })),
    metadata,
  };
}

/** Every tensor of a safetensors file as { name, code, shape, begin, end } in file order, the metadata, and where the data begins. */
function parse(file, where) {
  const fail = (what) => { throw new Error(`kiln: ${where}: ${what}`); };
  if (!(file instanceof Uint8Array)) fail(`expected the bytes of a safetensors file (a Uint8Array), got ${typeof file}`);
  if (file.length < 8) fail(`file of ${file.length} bytes is shorter than its 8-byte header length`);
  const n64 = new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} is over the format's limit of ${MAX_HEADER} bytes`);
  const n = Number(n64);
  if (n > file.length - 8) fail(`header of ${n} bytes runs past the end of the file (${file.length} bytes)`);
  let text, header;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(file.subarray(8, 8 + n));
  } catch {
    fail('header is not UTF-8 text');
  }
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not JSON: ${e.message.split('\n')[0]}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(`header is not a JSON object but ${show(header)}`);
  const dup = duplicateKey(text);
  if (dup !== undefined) fail(`header has the key ${show(dup)} twice`);
  const metadata = header.__metadata__ ?? {};
  if (typeof metadata !== 'object' || Array.isArray(metadata) || Object.values(metadata).some((v) => typeof v !== 'string')) {
    fail('__metadata__ must map names to strings');
  }
  const entries = [];
  const texts = indexTexts(text);
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bad = (what) => fail(`tensor ${show(name)} ${what}`);
    if (typeof h !== 'object' || h === null || Array.isArray(h)) bad(`is ${show(h)}, not { dtype, shape, data_offsets }`);
    if (typeof h.dtype !== 'string' || !Object.hasOwn(SAFETENSORS_BITS, h.dtype)) bad(`has an unknown dtype ${show(h.dtype)}`);
    const raw = texts.get(name) ?? {};
    if (!Array.isArray(h.shape) || !h.shape.every(isIndex)) bad(`has an invalid shape ${show(h.shape)}: dimensions are non-negative integers`);
    const shapeText = raw.shape?.find((t) => !plainIndex(t));
    if (shapeText !== undefined) bad(`has an invalid shape: ${shapeText} is not written as a non-negative integer`);
    const off = h.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isIndex)) bad(`has invalid data_offsets ${show(off)}: [begin, end], non-negative integers`);
    const offText = raw.data_offsets?.find((t) => !plainIndex(t));
    if (offText !== undefined) bad(`has invalid data_offsets: ${offText} is not written as a non-negative integer`);
    entries.push({ name, code: h.dtype, shape: h.shape, begin: off[0], end: off[1] });
  }
  const size = file.length - 8 - n;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    const bad = (what) => fail(`tensor ${show(e.name)} ${what}`);
    if (e.end < e.begin) bad(`has data_offsets [${e.begin}, ${e.end}] that end before they begin`);
    if (e.end > size) bad(`has data_offsets [${e.begin}, ${e.end}] past the end of the data (${size} bytes)`);
    if (e.begin !== at) bad(`has data_offsets [${e.begin}, ${e.end}] but ${at === 0 ? 'the data begins at 0' : `the tensor before it ends at ${at}`}: tensors cover the data in order, without gaps or overlaps`);
    const bits = e.shape.reduce((a, d) => a * d, 1) * SAFETENSORS_BITS[e.code];
    if (bits % 8 !== 0) bad(`of dtype ${e.code} and shape [${e.shape}] does not fill whole bytes`);
    if (bits / 8 !== e.end - e.begin) bad(`has ${e.end - e.begin} bytes of data, but ${e.code} of shape [${e.shape}] takes ${bits / 8}`);
    at = e.end;
  }
  if (at !== size) fail(`${size - at} bytes of data follow the last tensor`);
  return { entries, metadata, base: 8 + n };
}

/** The tensors the model's params need, by name, each checked against the manifest's dtype and shape. */
export function paramTensors(file, params, where = 'weights') {
  const { entries, base } = parse(file, where);
  const byName = new Map(entries.map((e) => [e.name, e]));
  return new Map(params.map((p) => {
    const e = byName.get(p.name);
    if (!e) throw new Error(`kiln: ${where}: has no tensor ${show(p.name)}`);
    if (e.code !== CODES[p.dtype]) throw new Error(`kiln: ${where}: tensor ${show(p.name)} is ${e.code}, the model expects ${CODES[p.dtype]}`);
    if (e.shape.length !== p.shape.length || e.shape.some((d, i) => d !== p.shape[i])) {
      throw new Error(`kiln: ${where}: tensor ${show(p.name)} has shape [${e.shape}], the model expects [${p.shape}]`);
    }
    return [p.name, file.subarray(base + e.begin, base + e.end)];
  }));
}

/** Compiles and instantiates the module: streamed where the server sends application/wasm, else from its bytes. */
async function instantiate(url) {
  if (url.protocol !== 'file:' && typeof WebAssembly.instantiateStreaming === 'function') {
    try {
      return (await WebAssembly.instantiateStreaming(fetch(url), imports)).instance;
    } catch (e) {
      // a wrong MIME type (or a failed request) rejects with a TypeError; compile errors are no better from bytes
      if (!(e instanceof TypeError)) throw new Error(`kiln: ${url.href}: ${e.message}`);
    }
  }
  try {
    return (await WebAssembly.instantiate(await bytesOf(url), imports)).instance;
  } catch (e) {
    throw e.message.startsWith('kiln: ') ? e : new Error(`kiln: ${url.href}: ${e.message}`);
  }
}

/** Compiles the module for a thread pool: streamed where the server sends application/wasm, else from its bytes. */
async function compile(url) {
  if (url.protocol !== 'file:' && typeof WebAssembly.compileStreaming === 'function') {
    try {
      return await WebAssembly.compileStreaming(fetch(url));
    } catch (e) {
      if (!(e instanceof TypeError)) throw new Error(`kiln: ${url.href}: ${e.message}`);
    }
  }
  try {
    return await WebAssembly.compile(await bytesOf(url));
  } catch (e) {
    throw e.message.startsWith('kiln: ') ? e : new Error(`kiln: ${url.href}: ${e.message}`);
  }
}

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** Threads by default: every core in Node; in a browser every core where cross-origin isolation allows shared memory. */
async function defaultThreads() {
  if (isNode) return (await import('node:os')).availableParallelism();
  return globalThis.crossOriginIsolated === true ? Math.max(1, navigator.hardwareConcurrency | 0) : 1;
}

// The thread pool's control words in a shared Int32Array. A job is a parallel loop cut into pieces (as the llvm
// pool cuts a loop among threads, kiln_runtime.c run_chunk, only finer). Each thread owns a run of pieces, the
// same part of every loop's iterations (as run_chunk gives it), so data a thread wrote in one loop (a row block of
// activations, of the weights and optimizer state) is in its own cache when it reads it in the next loop or call;
// CLAIMS + t holds (next piece << 16) | end of thread t's run. A thread runs its own pieces, then claims the
// others' left, so a thread the OS has not run yet holds up no one and none waits for a thread that has not
// started. Iterations are independent: whichever thread runs a piece, the results are the same bit for bit. JOB
// counts jobs (workers wait for it to change), CHUNK, ITERS and PIECES are the job's chunk function, iterations and
// pieces, DONE its pieces finished, FAILED the first thread whose piece failed (a trap), plus one, MESSAGE the length
// of its message (UTF-8, in the pool's message bytes), STOP set to end the workers.
const JOB = 0, CHUNK = 1, ITERS = 2, DONE = 3, FAILED = 4, MESSAGE = 5, STOP = 6, PIECES_OF = 7, CLAIMS = 8;
const MESSAGE_BYTES = 240;
/** Pieces per thread of a job: finer pieces even out threads that start late. */
const PIECES = 4;
/**
 * Busy-wait rounds before sleeping in Atomics.wait (the next job or piece is often a few microseconds away; a wake-up
 * from Atomics.wait took longer than the pieces of a small job). Measured on AMD EPYC Zen 2, seed MLP predict batch
 * 256 on 2 threads, interleaved rounds: 881 µs with 4,000 rounds, 753 µs with 40,000 (trainStep the same).
 */
const SPIN = 40000;

/** Iterations [begin, end) of part t of n parts of m iterations: as kiln_runtime.c run_chunk cuts them. */
function chunkOf(t, n, m) {
  const q = Math.floor(m / n), r = m % n, begin = t * q + Math.min(t, r);
  return [begin, begin + q + (t < r ? 1 : 0)];
}

/**
 * Claims and runs pieces of the current job until none is left, thread t's own run first, then the other threads'
 * from t + 1 on; returns how many it ran. A piece is claimed by moving a run's next piece on (Atomics.add): the job's
 * CHUNK, ITERS and PIECES, read after, are that piece's, since the calling thread writes them before the runs, and
 * no new job starts before every claimed piece is done.
 */
function runPieces(ctl, fns, onError, t, threads) {
  let ran = 0;
  for (let k = 0; k < threads; k++) {
    const run = CLAIMS + ((t + k) % threads);
    for (;;) {
      const c = Atomics.add(ctl, run, 0x10000), next = c >>> 16;
      if (next >= (c & 0xffff)) break;
      const pieces = Atomics.load(ctl, PIECES_OF), [begin, end] = chunkOf(next, pieces, Atomics.load(ctl, ITERS));
      try {
        if (begin < end) fns[Atomics.load(ctl, CHUNK)](begin, end, t); // t: the thread's scratch
      } catch (e) {
        onError(e);
      }
      ran++;
      if (Atomics.add(ctl, DONE, 1) + 1 === pieces) Atomics.notify(ctl, DONE);
    }
  }
  return ran;
}

/** The exported chunk functions of an instance by id (chunk<id>). */
function chunkFunctions(instance) {
  const fns = [];
  for (const [name, f] of Object.entries(instance.exports)) {
    const m = /^chunk(\d+)$/.exec(name);
    if (m) fns[Number(m[1])] = f;
  }
  return fns;
}

/**
 * Starts threads - 1 workers (model.worker.mjs, beside this file) on the module over `memory`; returns the
 * kiln.parallel import of the calling thread, which runs pieces with them and waits for those they claimed, and close().
 */
async function startPool(module, memory, threads) {
  const ctl = new Int32Array(new SharedArrayBuffer(4 * (CLAIMS + threads))), message = new Uint8Array(new SharedArrayBuffer(MESSAGE_BYTES));
  const script = new URL('./model.worker.mjs', import.meta.url);
  const { Worker } = isNode ? await import('node:worker_threads') : globalThis;
  const workers = [];
  const ready = [];
  for (let t = 1; t < threads; t++) {
    const w = isNode ? new Worker(script) : new Worker(script, { type: 'module' });
    workers.push(w);
    ready.push(new Promise((resolve, reject) => {
      const fail = (e) => reject(new Error(`kiln: thread ${t} of ${threads} (${script.href}): ${e?.message ?? e}`));
      const done = (m) => (m?.error ? fail({ message: m.error }) : resolve());
      if (isNode) { w.once('message', done); w.once('error', fail); } else { w.onmessage = (e) => done(e.data); w.onerror = (e) => { e.preventDefault?.(); fail(e); }; }
    }));
    w.postMessage({ module, memory, ctl, message, t, threads });
  }
  const stop = () => {
    Atomics.store(ctl, STOP, 1);
    Atomics.add(ctl, JOB, 1); // a new value: sleeping workers wake
    Atomics.notify(ctl, JOB);
    for (const w of workers) w.terminate();
  };
  try {
    await Promise.all(ready);
  } catch (e) {
    stop();
    throw e;
  }
  if (isNode) for (const w of workers) w.unref(); // idle workers keep no process alive
  let fns;
  // a browser's main thread may not Atomics.wait: it spins until the pieces the workers claimed are done
  const canWait = isNode || typeof document === 'undefined';
  let failure;
  const parallel = (id, n) => {
    const pieces = Math.min(n, threads * PIECES);
    Atomics.store(ctl, CHUNK, id);
    Atomics.store(ctl, ITERS, n);
    Atomics.store(ctl, PIECES_OF, pieces);
    Atomics.store(ctl, DONE, 0);
    for (let u = 0; u < threads; u++) { // each thread's run of pieces: the job starts
      const [begin, end] = chunkOf(u, threads, pieces);
      Atomics.store(ctl, CLAIMS + u, (begin << 16) | end);
    }
    Atomics.add(ctl, JOB, 1);
    Atomics.notify(ctl, JOB);
    failure = undefined;
    // a piece that traps here is thrown once every piece is done (the others run on: iterations are independent)
    runPieces(ctl, fns, (e) => { failure ??= e; }, 0, threads);
    for (let i = 0, done; (done = Atomics.load(ctl, DONE)) !== pieces; i++) if (canWait && i >= SPIN) Atomics.wait(ctl, DONE, done);
    if (failure) throw failure;
    const failed = Atomics.exchange(ctl, FAILED, 0);
    if (failed) throw new Error(`kiln: a parallel loop failed on thread ${failed - 1} of ${threads}: ${new TextDecoder().decode(message.slice(0, Atomics.load(ctl, MESSAGE)))}`);
    return 1;
  };
  return { parallel, setInstance: (instance) => { fns = chunkFunctions(instance); }, close: stop };
}

/** A worker thread's life (model.worker.mjs): instantiate the module on the shared memory, then run pieces until stopped. */
export async function workerMain() {
  const port = isNode ? (await import('node:worker_threads')).parentPort : globalThis;
  const { module, memory, ctl, message, t, threads } = await new Promise((resolve) => {
    if (isNode) port.once('message', resolve); else port.onmessage = (e) => resolve(e.data);
  });
  let fns;
  try {
    fns = chunkFunctions(await WebAssembly.instantiate(module, { ...imports, env: { memory } }));
  } catch (e) {
    port.postMessage({ error: e.message });
    return;
  }
  port.postMessage({ ready: true });
  const fail = (e) => { // the calling thread throws it
    if (Atomics.compareExchange(ctl, FAILED, 0, t + 1) === 0) {
      const text = new TextEncoder().encode(String(e?.message ?? e)).subarray(0, MESSAGE_BYTES);
      message.set(text);
      Atomics.store(ctl, MESSAGE, text.length);
    }
  };
  for (;;) {
    // the job read before its pieces: one that starts while they run is not waited for
    const job = Atomics.load(ctl, JOB);
    runPieces(ctl, fns, fail, t, threads);
    // no piece left: wait for JOB to change (a new job), spinning a little first
    for (let i = 0; i < SPIN && Atomics.load(ctl, JOB) === job; i++);
    if (Atomics.load(ctl, STOP)) return;
    if (Atomics.load(ctl, JOB) === job) Atomics.wait(ctl, JOB, job);
    if (Atomics.load(ctl, STOP)) return;
  }
}

const OPTIONS = ['wasm', 'weights', 'threads', 'relaxedSimd'];

/** A module of one function using f32x4.relaxed_madd: valid where the engine has relaxed SIMD. */
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11, 0, 32, 0, 32, 0, 32, 0, 253, 133, 2, 11]);

/**
 * Instantiates the module. options.wasm / options.weights: URLs (or weights bytes) to load instead of the defaults;
 * options.threads: threads to run parallel loops on (default: defaultThreads); more than one loads the threaded
 * build over a shared memory; options.relaxedSimd: the build whose micro-kernels use f32x4.relaxed_madd (default:
 * where the engine has relaxed SIMD). The builds lie beside model.wasm: model[-threads][-relaxed].wasm.
 */
export async function load(options = {}) {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new Error(`kiln: load: options must be an object, got ${show(options)}`);
  for (const k of Object.keys(options)) if (!OPTIONS.includes(k)) throw new Error(`kiln: load: unknown option '${k}'; options: ${OPTIONS.join(', ')}`);
  const url = (v, what) => {
    if (v instanceof URL) return v;
    throw new Error(`kiln: load: ${what} must be a URL${what === 'weights' ? ' or a Uint8Array' : ''}, got ${show(v)}`);
  };
  const t = options.threads;
  if (t !== undefined && !(Number.isInteger(t) && t >= 1 && t <= 256)) throw new Error(`kiln: load: threads must be an integer from 1 to 256, got ${show(t)}`);
  const threads = t ?? await defaultThreads();
  const hasRelaxed = WebAssembly.validate(RELAXED_PROBE), r = options.relaxedSimd;
  if (r !== undefined && typeof r !== 'boolean') throw new Error(`kiln: load: relaxedSimd must be true or false, got ${show(r)}`);
  if (r && !hasRelaxed) throw new Error('kiln: load: relaxedSimd: this engine has no relaxed SIMD (Node 20: node --experimental-wasm-relaxed-simd)');
  const relaxed = r ?? hasRelaxed;
  const wasmUrl = options.wasm === undefined ? new URL('./model.wasm', import.meta.url) : url(options.wasm, 'wasm');
  const build = (name) => (name === 'model' ? wasmUrl : new URL(`./${name}.wasm`, wasmUrl));
  let instance, pool;
  if (threads > 1) {
    if (typeof SharedArrayBuffer === 'undefined') throw new Error(`kiln: load: ${threads} threads need shared memory, which this page does not have: serve it cross-origin isolated (Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp), or load with threads: 1`);
    const module = await compile(build(relaxed ? 'model-threads-relaxed' : 'model-threads'));
    // the layout's memory, then staging and each thread's scratch (MANIFEST.threads; compiler's ThreadMemory)
    const T = MANIFEST.threads, pages = (bytes) => Math.ceil(bytes / 65536);
    const memory = new WebAssembly.Memory(T
      ? { initial: Math.max(pages(MANIFEST.memoryBytes), pages(T.scratch + (threads - 1) * T.scratchStride)), maximum: pages(T.maxBytes), shared: true }
      : { initial: MANIFEST.memoryBytes / 65536, maximum: MANIFEST.memoryBytes / 65536, shared: true });
    pool = await startPool(module, memory, threads);
    try {
      instance = await WebAssembly.instantiate(module, { ...imports, env: { memory }, kiln: { parallel: pool.parallel } });
    } catch (e) {
      pool.close();
      throw new Error(`kiln: ${wasmUrl.href}: ${e.message}`);
    }
    pool.setInstance(instance);
  } else {
    instance = await instantiate(build(relaxed ? 'model-relaxed' : 'model'));
  }
  try {
    const model = await ready(instance, pool, threads, options, url);
    model.relaxedSimd = relaxed;
    return model;
  } catch (e) {
    pool?.close();
    throw e;
  }
}

/** The model of an instance: its weights loaded, and its entries. */
async function ready(instance, pool, threads, options, url) {
  const memory = instance.exports.memory;
  const u8 = () => new Uint8Array(memory.buffer);
  const view = (p) => new ARRAYS[p.dtype](memory.buffer, p.offset, p.size);
  // params live at one place for every entry; trainStep's include the optimizer state
  const params = [...new Map(Object.values(LAYOUT).flatMap((L) => L.params).map((p) => [p.name, p])).values()];
  if (!EMBEDDED || options.weights !== undefined) {
    const w = options.weights;
    const source = w instanceof Uint8Array ? w : w === undefined ? new URL('./weights.safetensors', import.meta.url) : url(w, 'weights');
    const bytes = source instanceof Uint8Array ? source : await bytesOf(source);
    const shapes = new Map(MANIFEST.params.map((p) => [p.name, p.shape]));
    const tensors = paramTensors(bytes, params.map((p) => ({ name: p.name, dtype: p.dtype, shape: shapes.get(p.name) })), source instanceof URL ? source.href : 'weights');
    for (const p of params) u8().set(tensors.get(p.name), p.offset);
  }
  // With threads, an input goes to staging first, then to its buffer by the module's memory.copy: the other threads'
  // caches hold lines of the buffer (they read it last call), and a JS write to those costs about 7x one to lines
  // only this thread holds (measured on AMD EPYC Zen 2: 300 µs, against 40 µs, for 800 KB)
  const T = MANIFEST.threads, copy = instance.exports['kiln.copy'];
  const staged = pool !== undefined && T !== undefined && typeof copy === 'function';
  /** Writes values into p's buffer, then zeros up to its end. */
  const write = (p, values) => {
    const bytes = p.size * ARRAYS[p.dtype].BYTES_PER_ELEMENT;
    if (!staged || bytes > T.stagingBytes) {
      const v = view(p);
      v.set(values);
      v.fill(0, values.length);
      return;
    }
    const v = new ARRAYS[p.dtype](memory.buffer, T.staging, p.size);
    v.set(values);
    v.fill(0, values.length);
    copy(p.offset, T.staging, bytes);
  };
  const check = (entry, inputs) => {
    const L = LAYOUT[entry];
    if (!Array.isArray(inputs) || inputs.length !== L.inputs.length) throw new Error(`kiln: ${entry} takes ${L.inputs.length} input array(s): ${L.inputs.map((i) => i.name).join(', ')}`);
    L.inputs.forEach((p, i) => {
      if (typeof inputs[i]?.length !== 'number') throw new Error(`kiln: input ${p.name} must be an array of numbers, got ${show(inputs[i])}`);
      // a typed array holds numbers; a plain array's strings or objects would be stored as NaN
      const bad = ArrayBuffer.isView(inputs[i]) ? -1 : Array.prototype.findIndex.call(inputs[i], (v) => typeof v !== 'number' && typeof v !== 'boolean');
      if (bad >= 0) throw new Error(`kiln: input ${p.name}: value ${bad} is ${show(inputs[i][bad])}, not a number`);
    });
    return L;
  };
  const call = (entry, inputs) => {
    const L = check(entry, inputs);
    L.inputs.forEach((p, i) => {
      if (inputs[i].length !== p.size) throw new Error(`kiln: input ${p.name} needs ${p.size} values, got ${inputs[i].length}`);
      write(p, inputs[i]);
    });
    instance.exports[entry]();
    for (const c of L.copies) u8().copyWithin(c.to, c.from, c.from + c.bytes);
    return L.outputs.map((p) => view(p).slice());
  };
  // Any number of rows n: chunks of the compiled batch b, then the r rows left one at a time (predict_1) when
  // 4r < b, else as one chunk padded with zero rows; exact, because the rows are independent (as kiln_rows.c).
  const rowsCall = (entry, inputs) => {
    const L = check(entry, inputs), b = MANIFEST.entries[entry].batchSize;
    if (MANIFEST.maxBatch === null) {
      const have = inputs[0].length / (L.inputs[0].size / b);
      if (inputs.every((x, i) => x.length === L.inputs[i].size)) return call(entry, inputs);
      throw new Error(`kiln: ${entry} takes exactly ${b} rows, got ${Number.isInteger(have) ? have : `${inputs[0].length} values`}: its rows are not independent (${MANIFEST.fixedRows})`);
    }
    const rowSize = (p) => p.size / b;
    const n = inputs[0].length / rowSize(L.inputs[0]);
    L.inputs.forEach((p, i) => {
      if (inputs[i].length % rowSize(p) !== 0) throw new Error(`kiln: input ${p.name} needs whole rows of ${rowSize(p)} values, got ${inputs[i].length}`);
      if (inputs[i].length !== n * rowSize(p)) throw new Error(`kiln: input ${p.name} has ${inputs[i].length / rowSize(p)} rows, but input ${L.inputs[0].name} has ${n}`);
    });
    if (n < 1) throw new Error(`kiln: ${entry} needs at least one row, got 0`);
    const outs = L.outputs.map((p) => new ARRAYS[p.dtype](n * rowSize(p)));
    const run = (name, from, count) => {
      const E = LAYOUT[name], eb = MANIFEST.entries[name].batchSize;
      E.inputs.forEach((p, i) => {
        const rs = p.size / eb, x = inputs[i];
        write(p, ArrayBuffer.isView(x) ? x.subarray(from * rs, (from + count) * rs) : Array.prototype.slice.call(x, from * rs, (from + count) * rs));
      });
      instance.exports[name]();
      for (const c of E.copies) u8().copyWithin(c.to, c.from, c.from + c.bytes);
      E.outputs.forEach((p, i) => { const rs = p.size / eb; outs[i].set(view(p).subarray(0, count * rs), from * rs); });
    };
    const full = Math.floor(n / b), r = n % b, one = b === 1 ? entry : `${entry}_1`;
    for (let k = 0; k < full; k++) run(entry, k * b, b);
    if (r && 4 * r < b && LAYOUT[one]) for (let k = 0; k < r; k++) run(one, full * b + k, 1);
    else if (r) run(entry, full * b, r);
    return outs;
  };
  const model = {
    manifest: MANIFEST,
    /** Threads parallel loops run on. */
    threads,
    /** Ends the worker threads (a no-op with one thread); the model is unusable after. */
    close: () => pool?.close(),
    predict: (inputs) => rowsCall('predict', inputs),
    /** Current parameter values by name (weights, and optimizer state when compiled with --train). */
    getWeights: () => new Map(params.map((p) => [p.name, view(p).slice()])),
  };
  // (a model input named 'rows' keeps that name, and the compiler gives such a trainStep no count of rows)
  const partial = LAYOUT.trainStep?.inputs.at(-1)?.name === 'rows' && !MANIFEST.inputs.some((i) => i.name === 'rows');
  if (LAYOUT.trainStep) model.trainStep = partial ? partialStep : (inputs) => call('trainStep', inputs);
  // A training step on 1..b rows, as Keras trains the last, smaller batch of an epoch: the rows after them are zero
  // padding, which the step's "rows" input leaves out of the loss and the gradients; pred outputs keep the n rows.
  function partialStep(inputs) {
    const L = LAYOUT.trainStep, b = MANIFEST.entries.trainStep.batchSize, given = L.inputs.filter((p) => p.name !== 'rows');
    if (!Array.isArray(inputs) || inputs.length !== given.length) throw new Error(`kiln: trainStep takes ${given.length} input array(s): ${given.map((p) => p.name).join(', ')}`);
    const batched = (p) => p.name !== 'rng_counter';
    const rowSize = (p) => p.size / b, first = given.find(batched);
    const n = inputs[given.indexOf(first)]?.length / rowSize(first);
    if (!(Number.isInteger(n) && n >= 1 && n <= b)) throw new Error(`kiln: trainStep takes 1 to ${b} rows, got ${inputs[given.indexOf(first)]?.length} values for ${first.name} (rows of ${rowSize(first)})`);
    const full = given.map((p, i) => {
      const x = inputs[i];
      if (typeof x?.length !== 'number') throw new Error(`kiln: input ${p.name} must be an array of numbers, got ${show(x)}`);
      const bad = ArrayBuffer.isView(x) ? -1 : Array.prototype.findIndex.call(x, (v) => typeof v !== 'number' && typeof v !== 'boolean');
      if (bad >= 0) throw new Error(`kiln: input ${p.name}: value ${bad} is ${show(x[bad])}, not a number`);
      if (!batched(p)) return x;
      if (x.length !== n * rowSize(p)) throw new Error(`kiln: input ${p.name} needs ${n} rows of ${rowSize(p)} values, got ${x.length} values`);
      if (n === b) return x; // a full batch: no padding, no copy
      const padded = new ARRAYS[p.dtype](p.size);
      padded.set(x);
      return padded;
    });
    const outs = call('trainStep', L.inputs.map((p) => (p.name === 'rows' ? Int32Array.of(n) : full[given.indexOf(p)])));
    return outs.map((o, i) => (L.outputs[i].name.startsWith('pred/') ? o.slice(0, n * (L.outputs[i].size / b)) : o));
  }
  return model;
}
