#!/bin/sh
# Data-parallel training on MPI: the seed MLP's Adam step on 1 and 2 ranks (model_train --bench: median us per step,
# and on 2 ranks the all-reduce's share), beside the single-process model_train. Run from the repository root after
# `npm run build`; writes nothing outside $OUT (default /tmp/kiln-bench-distributed).
set -e
OUT=${OUT:-/tmp/kiln-bench-distributed}
N=${N:-500}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 KILN_NUM_THREADS=1
mkdir -p "$OUT"
node -e "
const fs = require('node:fs');
import('./dist/frontend/index.js').then(async (keras) => {
  const { writeNpy } = await import('./dist/runtime/npy.js');
  const [[x, y]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
  fs.writeFileSync('$OUT/x.npy', writeNpy('float32', [8000, 784], x.data));
  fs.writeFileSync('$OUT/y.npy', writeNpy('int32', [8000], y.data));
});"
for b in 16 32 64; do
  node dist/cli/main.js compile examples/seed/losses.ts --target llvm --train --batch-size $b -o "$OUT/single$b" > /dev/null
  node dist/cli/main.js compile examples/seed/losses.ts --target llvm --train --distributed mpi --batch-size $b -o "$OUT/mpi$b" > /dev/null
done
grep -m1 'model name' /proc/cpuinfo; grep -m1 'cpu family' /proc/cpuinfo; grep -m1 '^model' /proc/cpuinfo; uptime
for round in 1 2 3; do
  for b in 32 64; do
    echo "single process, batch $b: $("$OUT/single$b/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
    echo "mpirun -np 1, batch $b: $(mpirun -np 1 "$OUT/mpi$b/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
    echo "mpirun -np 2, $((b / 2)) per rank (global $b): $(mpirun -np 2 "$OUT/mpi$((b / 2))/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
    echo "mpirun -np 2, $b per rank (global $((2 * b))): $(mpirun -np 2 "$OUT/mpi$b/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
  done
done
