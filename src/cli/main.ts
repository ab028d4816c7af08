// Entry point of the bundle (bin/oz-worker.js loads it): runs the command line.
import { main } from './program.js';

await main(process.argv);
