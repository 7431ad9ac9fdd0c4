# Prints check.sh's results (case, key, value lines) as one table with the peers' ratios to kiln's launches.
import os
import sys

rows, gpu = {}, ''
for line in open(sys.argv[1]):
    parts = line.rstrip('\n').split('\t')
    if len(parts) != 3:
        continue
    case, key, value = parts
    if case == 'all':
        gpu = value
    else:
        rows.setdefault(case, {})[key] = value

# the cost model's estimate of each case (bench/cuda.ts writes estimates.txt beside results.tsv): name, launches,
# cycles, 'X us at 1.98 GHz'
model = {}
estimates = os.path.join(os.path.dirname(sys.argv[1]) or '.', 'estimates.txt')
if os.path.exists(estimates):
    for line in open(estimates):
        parts = line.rstrip('\n').split('\t')
        if len(parts) == 4:
            model[parts[0]] = float(parts[3].split(' ')[0])

# the goals on an H200 (microseconds per call), and the peers measured there (PyTorch graph / JAX jit)
goals = {'mlp_train_b32': 25, 'mlp_train_b1024': 30, 'mlp_predict_b1024': 10, 'cnn_train_b32': 80, 'cnn_train_b1024': 400, 'cnn_predict_b1024': 120}

def num(r, k):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return None

def fmt(v):
    return '-' if v is None else f'{v:.1f}'

head = ['case', 'check', 'kiln launches us', 'kiln call us', 'PyTorch graph us', 'JAX jit us', 'PyTorch/kiln', 'JAX/kiln', 'goal us', 'model us', 'kiln/model']
out = [head]
for case in sorted(rows, key=lambda c: list(goals).index(c) if c in goals else 99):
    r = rows[case]
    k, t, j = num(r, 'kiln_launches'), num(r, 'torch'), num(r, 'jax')
    ratio = lambda p: '-' if p is None or not k else f'{p / k:.2f}x'
    m = model.get(case)
    out.append([case, r.get('check', '-'), fmt(k), fmt(num(r, 'kiln_call')), fmt(t), fmt(j), ratio(t), ratio(j), str(goals.get(case, '-')),
                fmt(m), '-' if m is None or not k else f'{k / m:.2f}x'])
w = [max(len(row[i]) for row in out) for i in range(len(head))]
print(f'\n{gpu}: microseconds per step (median for kiln; mean over many replays for the peers); ratios > 1: kiln faster')
for i, row in enumerate(out):
    print(' | '.join(x.ljust(w[n]) for n, x in enumerate(row)))
    if i == 0:
        print('-+-'.join('-' * x for x in w))
