// The process `kiln export` runs a model file in (as cli/child.ts does for compile): it loads the model, writes the
// ONNX file (to a temporary file renamed over the output, so a failed export leaves no half-written file) and reports.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KilnError, displayPath, errorLocation, errorReport } from './common.js';
import type { Message } from './child.js';
import { awaitGoAhead } from './gate.js';
import { loadModelFile, modelFileError } from '../compiler.js';

/** What to export, from the command line (checked by main.ts). */
export interface ExportJob {
  file: string;
  format: 'onnx';
  out?: string;
  /** The parent type-checks the file meanwhile: wait for its go-ahead before writing. */
  awaitCheck: boolean;
}

if (!process.send) {
  console.error('kiln: cli/export_child.js runs under the kiln command (kiln export ...)');
  process.exit(2);
}
const job = JSON.parse(process.argv[2]!) as ExportJob;
const file = path.resolve(job.file);
const debug = process.env['KILN_DEBUG'] === '1';
let running = false;

function end(outcome: { stdout: string } | { error: string }): void {
  process.send!({ type: 'end', ...outcome } satisfies Message, () => process.exit('error' in outcome ? 1 : 0));
}

function fail(err: unknown): void {
  const located = !(err instanceof KilnError) && (running || errorLocation(err, file) !== undefined);
  end({ error: errorReport(located ? modelFileError(err, file) : err, debug) });
}

process.channel?.unref();
process.on('uncaughtException', fail);

try {
  const model = await loadModelFile(file, {
    check: false, // the kiln command checks (or --no-check)
    onRun: () => {
      running = true;
      process.send!({ type: 'run' } satisfies Message);
    },
  });
  running = false;
  process.send!({ type: 'loaded' } satisfies Message);
  if (job.awaitCheck) await awaitGoAhead();
  const { exportOnnx } = await import('../io/onnx/export.js');
  let bytes: Uint8Array;
  try {
    bytes = exportOnnx(model);
  } catch (err) {
    throw new KilnError(`cannot export model '${model.name}' to ONNX: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const out = job.out ?? path.join('build', `${path.basename(file).replace(/\.[^.]*$/, '')}.onnx`);
  const tmp = `${out}.kiln-${process.pid}.tmp`;
  try {
    mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    writeFileSync(tmp, bytes);
    renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new KilnError(`cannot write ${displayPath(path.resolve(out))}: ${(err as Error).message}`, { cause: err });
  }
  end({ stdout: `${out}\n` });
} catch (err) {
  fail(err);
}
