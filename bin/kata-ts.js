#!/usr/bin/env node
// Published entry point: runs the compiled CLI (dist/), never TypeScript sources.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
