// The buffer an all-reduce kernel (Kernel.allreduce) leaves for the runtime to sum over the processes.
import type { Kernel, Program } from './ir.js';
import { walkStmts } from './visit.js';

/** The one buffer kernel k stores to, and its size in elements, or an error naming the kernel. */
export function allreduceBuffer(p: Program, k: Kernel): { buffer: string; size: number } {
  const stored = new Set<string>();
  walkStmts(k.body, (s) => { if (s.k === 'store') stored.add(s.buf); });
  const [buffer] = stored, b = p.buffers.find((x) => x.name === buffer);
  if (stored.size !== 1 || !b || b.dtype !== 'float32') throw new Error(`${p.name}: all-reduce kernel ${k.name} must store to one float32 buffer, stores to ${[...stored].join(', ') || 'none'}`);
  return { buffer: b.name, size: b.size };
}
