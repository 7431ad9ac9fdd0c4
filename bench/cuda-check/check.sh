#!/bin/bash
# kiln's cuda target on a GPU, beside PyTorch (the whole step captured as a CUDA graph) and JAX (jax.jit), in one
# run. Prepared by `npm run bench:cuda` (bench/cuda.ts), which built every executable with nvcc and saved each
# case's inputs and expected outputs; run here, on a machine with an NVIDIA GPU, nvcc's runtime, PyTorch and JAX
# (no Node): bash check.sh. Every step has a timeout and fails in one line without stopping the others; the last
# thing printed is one table (results.tsv holds the raw numbers).
set -euo pipefail
cd "$(dirname "$0")"
: > results.tsv
note() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> results.tsv; }
last() { tail -n 1 | tr -d '\r'; }
# seconds for the next step: at most $1, and none past 540 s into the run (the table still prints within 10 minutes)
upto() { local s=$1 left=$((540 - SECONDS)); ((left < s)) && s=$left; ((s < 1)) && s=1; echo "$s"; }
# the table prints however the run ends
trap 'timeout 20 python3 table.py results.tsv || echo "check.sh: table.py FAILED"' EXIT

if ! gpu=$(timeout 20 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -n 1); then
  echo "check.sh: nvidia-smi failed: ${gpu:-no output}"
  gpu="unknown GPU"
fi
echo "GPU: $gpu"
note all gpu "$gpu"

# shellcheck disable=SC2013
for c in $(cat cases.txt); do
  entry=$(cat "$c/entry")
  reps=2000
  if [[ $c == *b1024 ]]; then reps=200; fi
  ins=$(ls "$c"/in*.npy | sort)
  # correctness: the checked entry (a training step's updates as outputs) against the saved expected outputs
  check=$(cat "$c/check_entry")
  # shellcheck disable=SC2086
  if ! msg=$(timeout "$(upto 60)" "$c/model_main" --entry "$check" --out "$c/got" $ins 2>&1); then
    echo "$c: model_main FAILED: $(echo "$msg" | last)"
    note "$c" check FAILED
    continue
  fi
  if ! msg=$(timeout "$(upto 60)" python3 compare.py "$c" 2>&1); then msg="compare FAILED: $(echo "$msg" | last)"; fi
  echo "$c: $msg"
  note "$c" check "$(echo "$msg" | cut -d' ' -f1)"
  # speed: the whole call (input copy in, launches, outputs out) and the launches alone (CUDA events)
  # shellcheck disable=SC2086
  if t=$(timeout "$(upto 60)" "$c/model_main" --entry "$entry" --bench "$reps" $ins 2>&1 | last) && [[ $t == median* ]]; then
    note "$c" kiln_call "$(echo "$t" | awk '{print $2}')"
  else
    echo "$c: kiln --bench FAILED: ${t:-no output (timed out?)}"
  fi
  # shellcheck disable=SC2086
  if l=$(KILN_CUDA_PROFILE=1 timeout "$(upto 60)" "$c/model_main" --entry "$entry" --bench "$reps" $ins 2>&1 >/dev/null | grep 'kiln cuda: launches' | last) && [[ -n $l ]]; then
    note "$c" kiln_launches "$(echo "$l" | awk '{print $4}')"
  else
    echo "$c: kiln KILN_CUDA_PROFILE FAILED: ${l:-no launch times (timed out?)}"
  fi
done

# the peers, each framework in its own process so one missing or failing does not hide the other
for peer in torch jax; do
  if ! timeout "$(upto 180)" python3 peers.py "$peer" >> results.tsv 2> "peer_$peer.log"; then
    echo "$peer: FAILED: $(last < "peer_$peer.log")"
  fi
  grep -h 'FAILED' "peer_$peer.log" || true
done
echo "mlp_fit: model_train, seed MLP, 8,000 digits, 3 epochs, batch 32, Adam, 20% held out (data on the device):"
if ! (cd mlp_fit && KILN_CUDA_PROFILE=1 timeout "$(upto 90)" ./model_train --epochs 3 --batch-size 32 --validation-split 0.2 --out trained.safetensors x.npy y.npy 2>&1 | tail -n 4); then
  echo "mlp_fit: model_train FAILED"
fi

