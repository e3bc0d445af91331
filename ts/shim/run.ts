// Development entry (`node --import tsx ts/shim/run.ts …`); the published bin runs dist/shim/main.js.
import { shimMain } from './main.js';

process.exitCode = await shimMain(process.argv.slice(2));
