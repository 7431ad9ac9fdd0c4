// model.summary(): Keras 3's table of layers, output shapes and parameter counts.
import type { AnyLayer } from '../layers/layer.js';
import { type SymbolicShape, formatKerasShape } from '../tensor.js';
import type { Model } from './model.js';

export interface SummaryRow {
  readonly layer: AnyLayer;
  readonly shapes: readonly SymbolicShape[];
  /** Inbound tensors as "layer[call][output]"; undefined for sequential models. */
  readonly connectedTo?: readonly string[];
}

/** Greedy word wrap; words longer than the width are split. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (let word of text.split(' ')) {
    while (word.length > width) {
      if (cur) { lines.push(cur); cur = ''; }
      lines.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (!cur) cur = word;
    else if (cur.length + 1 + word.length <= width) cur += ` ${word}`;
    else { lines.push(cur); cur = word; }
  }
  lines.push(cur);
  return lines;
}

/** Bytes as Keras prints them: 198.79 KB. */
export function readableSize(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return `${bytes.toFixed(2)} ${units[i]}`;
}

function countOf(layer: AnyLayer): number {
  return layer.built ? layer.weights.reduce((n, w) => n + w.size, 0) : 0;
}

export function summary(model: Model): string {
  const rows = model.summaryRows();
  const functional = rows.some((r) => r.connectedTo !== undefined);
  const widths = functional ? [19, 17, 10, 17] : [31, 22, 13];
  const heads = functional ? ['Layer (type)', 'Output Shape', 'Param #', 'Connected to'] : ['Layer (type)', 'Output Shape', 'Param #'];
  const right = heads.map((h) => h === 'Param #');
  const line = (l: string, m: string, r: string, fill: string): string => l + widths.map((w) => fill.repeat(w + 2)).join(m) + r;
  const cells = (vals: string[][], sep: string): string[] => {
    const height = Math.max(...vals.map((v) => v.length));
    return Array.from({ length: height }, (_, i) => sep + vals.map((v, c) => {
      const s = v[i] ?? '';
      return ` ${right[c] ? s.padStart(widths[c]!) : s.padEnd(widths[c]!)} `;
    }).join(sep) + sep);
  };
  const out = [`Model: "${model.name}"`, line('┏', '┳', '┓', '━'), ...cells(heads.map((h) => [h]), '┃'), line('┡', '╇', '┩', '━')];
  rows.forEach((r, i) => {
    const name = wrap(`${r.layer.name} (${r.layer.className})`, widths[0]!);
    const shape = r.shapes.length ? r.shapes.map(formatKerasShape).join(', ') : '?';
    const vals = [name, wrap(shape, widths[1]!), [countOf(r.layer).toLocaleString('en-US')]];
    if (functional) {
      const conn = r.connectedTo!.length ? r.connectedTo!.map((c, j) => (j < r.connectedTo!.length - 1 ? `${c},` : c)).flatMap((c) => wrap(c, widths[3]!)) : ['-'];
      vals.push(conn);
    }
    out.push(...cells(vals, '│'));
    out.push(i < rows.length - 1 ? line('├', '┼', '┤', '─') : line('└', '┴', '┘', '─'));
  });
  if (rows.length === 0) out.push(line('└', '┴', '┘', '─'));
  const sizeOfWeights = (ws: { size: number }[]): string => {
    const n = ws.reduce((a, w) => a + w.size, 0);
    return `${n.toLocaleString('en-US')} (${readableSize(n * 4)})`;
  };
  const built = model.built || rows.length > 0;
  const all = built ? model.weights : [];
  out.push(` Total params: ${sizeOfWeights(all)}`);
  out.push(` Trainable params: ${sizeOfWeights(model.trainableWeights)}`);
  out.push(` Non-trainable params: ${sizeOfWeights(model.nonTrainableWeights)}`);
  return out.join('\n');
}
