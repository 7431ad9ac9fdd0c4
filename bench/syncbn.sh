#!/bin/sh
# Synchronized BatchNormalization on MPI: model_train --bench (median us per step, the gradients' all-reduce apart) of
# bench/syncbn_model.ts with local and with synchronized batch statistics, on 1 rank and on 2. Run from the repository
# root after `npm run build`; writes nothing outside $OUT (default /tmp/kiln-bench-syncbn).
set -e
OUT=${OUT:-/tmp/kiln-bench-syncbn}
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
for b in 16 32; do
  for s in 0 1; do
    KILN_SYNC_BN=$s node dist/cli/main.js compile bench/syncbn_model.ts --target llvm --train --distributed mpi --batch-size $b -o "$OUT/bn$s-$b" > /dev/null
  done
done
grep -m1 'model name' /proc/cpuinfo; grep -m1 'cpu family' /proc/cpuinfo; grep -m1 '^model' /proc/cpuinfo; uptime
for round in 1 2 3; do
  for s in 0 1; do
    echo "synchronized=$s, mpirun -np 1, batch 32: $(mpirun -np 1 "$OUT/bn$s-32/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
    echo "synchronized=$s, mpirun -np 2, 16 per rank: $(mpirun -np 2 "$OUT/bn$s-16/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
  done
done
