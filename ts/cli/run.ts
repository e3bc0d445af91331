// Development entry (`tsx ts/cli/run.ts …`); the published bin runs dist/cli/main.js.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
