// The training page's module: trains the seed MLP on MNIST with the artifact's compiled trainStep (kiln's wasm
// backend), plots loss and accuracy live with uPlot, and classifies the digits drawn on the pad.
import uPlot from './uPlot.esm.js';
import { load } from './model/model.mjs';

const EPOCHS = 5;
const PIXELS = 784;
/** Steps between two points of the curves. */
const LOG_EVERY = 25;
/** The series' colours (the page test looks for them in a screenshot of the plot). */
export const COLORS = { loss: '#e8590c', batch: '#1c7ed6', heldOut: '#2b8a3e' };

const $ = (id) => document.getElementById(id);
function status(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

/** A .npy file (version 1, little-endian float32 or int32, as kiln writes them) as { shape, data }. */
async function npy(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const buf = await r.arrayBuffer(), bytes = new Uint8Array(buf);
  const length = bytes[8] | (bytes[9] << 8);
  const header = new TextDecoder().decode(bytes.subarray(10, 10 + length));
  const descr = /'descr': '([^']+)'/.exec(header)?.[1], shape = /'shape': \(([^)]*)\)/.exec(header)?.[1];
  const Type = { '<f4': Float32Array, '<i4': Int32Array }[descr];
  if (!Type || shape === undefined) throw new Error(`${url}: not a float32 or int32 .npy file`);
  return { shape: shape.split(',').filter((d) => d.trim()).map(Number), data: new Type(buf, 10 + length) };
}

/** A small seeded generator (mulberry32), so every run of the page shuffles the same way. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const argmax = (p, at, n = 10) => {
  let k = 0;
  for (let j = 1; j < n; j++) if (p[at + j] > p[at + k]) k = j;
  return k;
};

/** The share of rows of x whose predicted class is y. */
function accuracy(model, x, y) {
  const [p] = model.predict([x]);
  let right = 0;
  for (let i = 0; i < y.length; i++) right += argmax(p, i * 10) === y[i];
  return right / y.length;
}

function makePlot() {
  const opts = {
    width: Math.min(960, document.body.clientWidth), height: 320,
    scales: { x: { time: false }, loss: { range: (u, min, max) => [0, Math.max(1, max)] }, pct: { range: [0, 100] } },
    axes: [
      { label: 'epoch' },
      { scale: 'loss', label: 'loss' },
      { scale: 'pct', label: 'accuracy %', side: 1, grid: { show: false } },
    ],
    series: [
      { label: 'epoch', value: (u, v) => (v == null ? '–' : v.toFixed(2)) },
      { label: 'training loss', scale: 'loss', stroke: COLORS.loss, width: 2, spanGaps: true, points: { show: false } },
      { label: 'batch accuracy %', scale: 'pct', stroke: COLORS.batch, width: 2, spanGaps: true, points: { show: false } },
      { label: 'held-out accuracy %', scale: 'pct', stroke: COLORS.heldOut, width: 2, spanGaps: true, points: { show: true, size: 8, fill: COLORS.heldOut } },
    ],
  };
  return new uPlot(opts, [[], [], [], []], $('plot'));
}

const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

async function train(model, plot, xTrain, yTrain, xTest, yTest) {
  const batch = model.manifest.entries.trainStep.batchSize, n = yTrain.length, steps = Math.ceil(n / batch);
  const curves = [[], [], [], []];
  const point = (x, loss, batchAcc, heldOut) => {
    [x, loss, batchAcc, heldOut].forEach((v, i) => curves[i].push(v));
    plot.setData(curves);
  };
  let heldOut = accuracy(model, xTest, yTest);
  point(0, null, null, heldOut * 100);
  const order = Int32Array.from({ length: n }, (_, i) => i), next = random(7);
  const xb = new Float32Array(batch * PIXELS), yb = new Int32Array(batch);
  const t0 = performance.now();
  let step = 0, lastYield = t0;
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    let lossSum = 0, right = 0, seen = 0;
    for (let s = 0; s < steps; s++) {
      const rows = Math.min(batch, n - s * batch);
      for (let r = 0; r < rows; r++) {
        const k = order[s * batch + r];
        xb.set(xTrain.subarray(k * PIXELS, (k + 1) * PIXELS), r * PIXELS);
        yb[r] = yTrain[k];
      }
      // inputs: the images, their labels, and the dropout's counter (fit passes the optimizer's step count)
      const [loss, pred] = model.trainStep([xb.subarray(0, rows * PIXELS), yb.subarray(0, rows), Int32Array.of(step)]);
      step++;
      lossSum += loss[0] * rows;
      for (let r = 0; r < rows; r++) right += argmax(pred, r * 10) === yb[r];
      seen += rows;
      const last = s === steps - 1;
      if (last) heldOut = accuracy(model, xTest, yTest);
      if ((s + 1) % LOG_EVERY === 0 || last) {
        point(epoch + (s + 1) / steps, lossSum / seen, (100 * right) / seen, last ? heldOut * 100 : null);
        lossSum = right = seen = 0;
      }
      if (performance.now() - lastYield > 30 || last) {
        status(`epoch ${epoch + 1}/${EPOCHS}, step ${s + 1}/${steps}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        await yieldToBrowser();
        lastYield = performance.now();
      }
    }
    $('accuracy').textContent = `${(heldOut * 100).toFixed(2)}% on ${yTest.length} digits after epoch ${epoch + 1}`;
  }
  return { heldOut, seconds: (performance.now() - t0) / 1000, steps: step };
}

/** The pad's drawing as MNIST prepares its digits: the ink's bounding box scaled to fit 20x20 (box filter), placed
 * in 28x28 with its centre of mass in the middle. Returns undefined for an empty pad. */
function digitOf(pad) {
  const { width: w, height: h } = pad;
  const rgba = pad.getContext('2d').getImageData(0, 0, w, h).data;
  const ink = new Float32Array(w * h);
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let i = 0; i < w * h; i++) {
    ink[i] = rgba[i * 4] / 255;
    if (ink[i] > 0.1) {
      const x = i % w, y = (i / w) | 0;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
  }
  if (x1 < 0) return undefined;
  const scale = 20 / Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const bw = Math.max(1, Math.round((x1 - x0 + 1) * scale)), bh = Math.max(1, Math.round((y1 - y0 + 1) * scale));
  const sum = new Float32Array(bw * bh), count = new Float32Array(bw * bh);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const k = Math.min(bh - 1, ((y - y0) * scale) | 0) * bw + Math.min(bw - 1, ((x - x0) * scale) | 0);
      sum[k] += ink[y * w + x];
      count[k]++;
    }
  }
  let mass = 0, mx = 0, my = 0;
  for (let k = 0; k < bw * bh; k++) {
    sum[k] /= count[k] || 1;
    mass += sum[k]; mx += sum[k] * (k % bw); my += sum[k] * ((k / bw) | 0);
  }
  const dx = Math.round(13.5 - mx / mass), dy = Math.round(13.5 - my / mass);
  const out = new Float32Array(PIXELS);
  for (let k = 0; k < bw * bh; k++) {
    const x = (k % bw) + dx, y = ((k / bw) | 0) + dy;
    if (x >= 0 && x < 28 && y >= 0 && y < 28) out[y * 28 + x] = Math.min(1, sum[k]);
  }
  return out;
}

function showDigit(x) {
  const ctx = $('preview').getContext('2d'), img = ctx.createImageData(28, 28);
  for (let i = 0; i < PIXELS; i++) {
    const v = Math.round((x?.[i] ?? 0) * 255);
    img.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(img, 0, 0);
}

function setupPad(classify) {
  const pad = $('pad'), ctx = pad.getContext('2d');
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, pad.width, pad.height);
    showDigit(undefined);
    $('prediction').textContent = '–';
    delete $('prediction').dataset.class;
    $('bars').replaceChildren();
  };
  clear();
  ctx.strokeStyle = '#fff';
  ctx.lineWidth = 22;
  ctx.lineCap = ctx.lineJoin = 'round';
  let last;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
  };
  pad.addEventListener('pointerdown', (e) => {
    pad.setPointerCapture(e.pointerId);
    last = at(e);
    ctx.beginPath();
    ctx.arc(last[0], last[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fillStyle = '#fff';
    ctx.fill();
  });
  pad.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
  });
  const up = () => {
    if (!last) return;
    last = undefined;
    classify(digitOf(pad));
  };
  pad.addEventListener('pointerup', up);
  pad.addEventListener('pointercancel', up);
  $('clear').addEventListener('click', clear);
}

function classifier(model) {
  return (x) => {
    showDigit(x);
    if (!x) return;
    const [p] = model.predict([x]);
    const k = argmax(p, 0);
    $('prediction').textContent = String(k);
    $('prediction').dataset.class = String(k);
    $('bars').replaceChildren(...Array.from(p, (v, i) => {
      const row = document.createElement('div'), label = document.createElement('span'), bar = document.createElement('div'), pct = document.createElement('span');
      row.className = 'bar';
      label.textContent = String(i);
      bar.style.width = `${Math.round(v * 150)}px`;
      pct.textContent = `${(v * 100).toFixed(1)}%`;
      row.append(label, bar, pct);
      return row;
    }));
  };
}

/**
 * The model on `?threads=N` threads, default 1: a batch-32 step of this MLP is too small to share (on 2 cores it
 * took about twice as long on 2 threads as on 1); more than 1 needs cross-origin isolation, as demo:web serves.
 */
async function loadModel() {
  const given = new URLSearchParams(location.search).get('threads');
  const threads = given === null ? 1 : Number(given);
  if (!(Number.isInteger(threads) && threads >= 1)) throw new Error(`?threads= takes a whole number of threads from 1, got '${given}'`);
  try {
    return await load({ threads });
  } catch (e) {
    // a loader without threads has no such option, and runs on one
    if (threads === 1 && /unknown option 'threads'/.test(e.message)) return load();
    throw e;
  }
}

async function main() {
  status('loading the model and the digits…');
  const [model, xTrain, yTrain, xTest, yTest] = await Promise.all([
    loadModel(), npy('data/x_train.npy'), npy('data/y_train.npy'), npy('data/x_test.npy'), npy('data/y_test.npy'),
  ]);
  const plot = makePlot();
  setupPad(classifier(model));
  document.body.dataset.state = 'training';
  const r = await train(model, plot, xTrain.data, yTrain.data, xTest.data, yTest.data);
  status(`trained ${EPOCHS} epochs (${r.steps} steps) in ${r.seconds.toFixed(1)} s on ${model.threads ?? 1} thread(s); draw a digit below`);
  document.body.dataset.accuracy = String(r.heldOut);
  document.body.dataset.state = 'done';
}

main().catch((e) => {
  status(`error: ${e.message}`, true);
  document.body.dataset.state = 'error';
  throw e;
});
