#!/usr/bin/env node
// The `kiln` command's entry: a compile that the direct mode (cli/direct.ts) finds unchanged since it last succeeded is
// restored from the cache here, before anything else loads; every other command loads cli/command.ts. Where the direct
// mode misses, a compile's process starts before that (cli/prefork.ts); a hit starts none (forking first cost a hit
// about 20 ms on two cores).
import { tryDirect } from './direct.js';

const args = process.argv.slice(2);
if (!tryDirect(args)) {
  // (node:child_process is not loaded on a hit)
  if (args[0] === 'compile' && !args.includes('--help') && !args.includes('-h')) (await import('./prefork.js')).prefork();
  await import('./command.js');
}
