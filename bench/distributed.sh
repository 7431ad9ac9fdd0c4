#!/bin/sh
# Data-parallel training on MPI: the seed MLP's Adam step on 1 and 2 ranks (model_train --bench: median us per step,
# and on 2 ranks the all-reduce's time and the part of it the step waited for), beside the single-process model_train;
# then a deeper MLP (bench/distributed_deep.ts) whose last layers' gradients are reduced during the backward pass,
# with the overlap on and off. Run from the repository root after `npm run build`; writes nothing outside $OUT
# (default /tmp/kiln-bench-distributed).
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
node dist/cli/main.js compile bench/distributed_deep.ts --target llvm --train --batch-size 32 -o "$OUT/deep_single32" > /dev/null
node dist/cli/main.js compile bench/distributed_deep.ts --target llvm --train --distributed mpi --batch-size 32 -o "$OUT/deep_mpi32" > /dev/null
grep -m1 'model name' /proc/cpuinfo; grep -m1 'cpu family' /proc/cpuinfo; grep -m1 '^model' /proc/cpuinfo; uptime
for round in 1 2 3; do
  for b in 32 64; do
    echo "single process, batch $b: $("$OUT/single$b/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
    echo "mpirun -np 1, batch $b: $(mpirun -np 1 "$OUT/mpi$b/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
    echo "mpirun -np 2, $((b / 2)) per rank (global $b): $(mpirun -np 2 "$OUT/mpi$((b / 2))/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
    echo "mpirun -np 2, $b per rank (global $((2 * b))): $(mpirun -np 2 "$OUT/mpi$b/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
  done
  echo "deep MLP, single process, batch 32: $("$OUT/deep_single32/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
  echo "deep MLP, mpirun -np 1, batch 32: $(mpirun -np 1 "$OUT/deep_mpi32/model_train" --bench $N "$OUT/x.npy" "$OUT/y.npy")"
  echo "deep MLP, mpirun -np 2, 32 per rank, overlapped: $(mpirun -np 2 "$OUT/deep_mpi32/model_train" --overlap --bench $N "$OUT/x.npy" "$OUT/y.npy")"
  echo "deep MLP, mpirun -np 2, 32 per rank, --no-overlap: $(mpirun -np 2 "$OUT/deep_mpi32/model_train" --no-overlap --bench $N "$OUT/x.npy" "$OUT/y.npy")"
done
uptime
