#!/usr/bin/env node
// The `kiln` command's entry: a compile that the direct mode (cli/direct.ts) finds unchanged since it last succeeded is
// restored from the cache here, before anything else loads; every other command loads cli/command.ts. A compile's
// process starts first (cli/prefork.ts), beside the lookup.
import { tryDirect } from './direct.js';
import { dropPrefork, prefork } from './prefork.js';

const args = process.argv.slice(2);
if (args[0] === 'compile' && !args.includes('--help') && !args.includes('-h')) prefork();
if (tryDirect(args)) dropPrefork();
else await import('./command.js');
