# Compares a case's outputs (got/) with the expected ones saved when it was prepared: one line, MATCH or DIFFER.
import glob, os, sys
import numpy as np

c = sys.argv[1]
worst, where, n, exact = 0.0, '', 0, True
for f in sorted(glob.glob(f"{c}/expected/*.npy")):
    want = np.load(f).astype(np.float64)
    got = np.load(f"{c}/got/{os.path.basename(f)}").astype(np.float64)
    n += 1
    if got.shape != want.shape:
        print(f"DIFFER ({os.path.basename(f)}: shape {got.shape}, want {want.shape})")
        sys.exit(0)
    # bit for bit: the expected outputs follow the GPU's declared reduction trees
    exact = exact and np.array_equal(np.load(f).view(np.uint8), np.load(f"{c}/got/{os.path.basename(f)}").view(np.uint8))
    nan = np.isnan(want)
    if np.any(np.isnan(got) != nan):
        print(f"DIFFER ({os.path.basename(f)}: NaN where the interpreter has none, or the reverse)")
        sys.exit(0)
    err = float(np.max(np.abs(got[~nan] - want[~nan]) / (1e-6 + 1e-4 * np.abs(want[~nan])))) if want.size > nan.sum() else 0.0
    if err > worst:
        worst, where = err, os.path.basename(f)
print(f"{'MATCH' if n and worst <= 1 else 'DIFFER'} ({n} outputs{', bit for bit' if n and exact else ''}; worst |got - want| / (1e-6 + 1e-4 |want|) = {worst:.3f} {where})")
