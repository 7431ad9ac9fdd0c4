// The freestanding memory split: params and constants in one const array (flash on a microcontroller, read in place
// by the model code), everything written at run time (arena, scratch, inputs) in the RAM block.
import { type Entry, type Layout, align, packBuffer } from '../loop/layout.js';
import { bytesOf } from '../loop/memplan.js';

/** The name of the const array in model_desc.c that model.o reads params and constants from. */
export const FLASH_SYMBOL = 'kiln_flash';

export interface FlashLayout {
  /** The RAM layout: layout's arena and scratch as they were, inputs packed after them; no segments, no params. */
  readonly ram: Layout;
  /** entry name -> buffer name -> byte offset in the flash array (params and constants) */
  readonly flash: Record<string, Record<string, number>>;
  /** the flash array's bytes, 64-byte aligned pieces */
  readonly data: Uint8Array;
}

/**
 * Moves the params (values from `weights`, by param name) and the constants of every entry out of layout's memory
 * into a flash array. Only for entries that never write a param (inference): a write would go to flash.
 */
export function splitFlash(entries: readonly Entry[], layout: Layout, weights: ReadonlyMap<string, ArrayLike<number>>): FlashLayout {
  const pieces: Uint8Array[] = [];
  let flashTop = 0;
  const place = (data: Uint8Array): number => {
    const at = flashTop;
    pieces.push(data, new Uint8Array(align(Math.max(1, data.length)) - data.length));
    flashTop += align(Math.max(1, data.length));
    return at;
  };
  const params = new Map<string, number>();
  const flash: Record<string, Record<string, number>> = {};
  const offsets: Record<string, Record<string, number>> = {};
  let top = align(layout.scratchBase + layout.scratchBytes);
  for (const e of entries) {
    if (e.program.updates.length) throw new Error(`the freestanding runtime keeps the weights in flash: entry '${e.name}' updates them (no --train)`);
    const f: Record<string, number> = {}, o: Record<string, number> = {};
    for (const b of e.program.buffers) {
      if (b.kind === 'param') {
        const name = e.program.params.find((x) => x.buffer === b.name)!.name;
        const init = weights.get(name);
        if (!init) throw new Error(`the freestanding runtime embeds the weights: no values for param '${name}'`);
        if (!params.has(name)) params.set(name, place(packBuffer(b, init)));
        f[b.name] = params.get(name)!;
      } else if (b.kind === 'const') {
        f[b.name] = place(packBuffer(b, b.data ?? [0]));
      } else if (b.kind === 'input') {
        o[b.name] = top;
        top = align(top + Math.max(1, bytesOf(b)));
      } else {
        o[b.name] = layout.offsets[e.name]![b.name]!; // arena: temps and outputs
      }
    }
    flash[e.name] = f;
    offsets[e.name] = o;
  }
  const data = new Uint8Array(flashTop);
  let at = 0;
  for (const p of pieces) {
    data.set(p, at);
    at += p.length;
  }
  return { ram: { ...layout, memoryBytes: top, offsets, segments: [], params: new Map() }, flash, data };
}
