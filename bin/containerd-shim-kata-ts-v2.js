#!/usr/bin/env node
// Published containerd shim v2 entry point (`--runtime io.containerd.kata-ts.v2`): runs the
// compiled shim (dist/), never TypeScript sources.
import { shimMain } from '../dist/shim/main.js';

process.exitCode = await shimMain(process.argv.slice(2));
