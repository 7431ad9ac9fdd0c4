#!/usr/bin/env node
// The `kiln` command's entry: a compile that the direct mode (cli/direct.ts) finds unchanged since it last succeeded is
// restored from the cache here, before anything else loads; every other command loads cli/command.ts.
import { tryDirect } from './direct.js';

if (!tryDirect(process.argv.slice(2))) await import('./command.js');
