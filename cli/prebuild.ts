// `npm run build`'s postbuild: the hosted runtime's objects compiled once with kiln (codegen/llvm/target.ts
// prebuildHostObjects), so that no compile, not even the first on a machine or one after `kiln cache clear`, waits for
// gcc to build them. Without gcc this says so in one line and the build goes on (compiles then build them on first use).
import { prebuildHostObjects } from '../codegen/llvm/target.js';
import { prebuiltObjectDir } from '../codegen/native.js';

try {
  prebuildHostObjects(prebuiltObjectDir());
} catch (e) {
  console.error(`kiln: the runtime's objects were not prebuilt (${(e as Error).message.split('\n')[0]}); compiles build them on first use`);
}
