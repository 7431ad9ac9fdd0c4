# The peers of check.sh on the same goal cases: python3 peers.py torch|jax prints "case<TAB>torch|jax<TAB>us" lines.
# PyTorch: the whole step (forward, backward, Adam) captured once as a CUDA graph and replayed; JAX: the step under
# jax.jit with the params donated. Both exact float32 (no TF32), data already on the device, as kiln's launches.
import sys, time

CASES = [('mlp', 'train', 32), ('mlp', 'train', 1024), ('mlp', 'predict', 1024), ('cnn', 'train', 32), ('cnn', 'train', 1024), ('cnn', 'predict', 1024)]
REPS = {32: 2000, 1024: 500}


def per_call(f, sync, n):
    for _ in range(max(20, n // 10)):
        f()
    sync()
    t = time.perf_counter()
    for _ in range(n):
        f()
    sync()
    return (time.perf_counter() - t) / n * 1e6


def torch_cases():
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = 'cuda'

    def model(kind):
        nn = torch.nn
        if kind == 'mlp':
            return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10)).to(dev)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).to(dev)

    for kind, what, b in CASES:
        name = f'{kind}_{what}_b{b}'
        try:
            m = model(kind)
            x = torch.rand((b, 784) if kind == 'mlp' else (b, 1, 28, 28), device=dev)
            y = torch.randint(0, 10, (b,), device=dev)
            if what == 'train':
                m.train()
                opt = torch.optim.Adam(m.parameters(), 1e-3, capturable=True)
                def step():
                    opt.zero_grad(set_to_none=True)
                    torch.nn.functional.cross_entropy(m(x), y).backward()
                    opt.step()
            else:
                m.eval()
                def step():
                    with torch.no_grad():
                        return torch.softmax(m(x), 1)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(5):
                    step()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            if what == 'train':
                opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(g):
                step()
            print(f'{name}\ttorch\t{per_call(g.replay, torch.cuda.synchronize, REPS[b]):.2f}', flush=True)
        except Exception as e:  # one case failing leaves the others
            print(f'{name}: PyTorch FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}', file=sys.stderr)


def jax_cases():
    import jax
    import jax.numpy as jnp
    jax.config.update('jax_default_matmul_precision', 'highest')

    def init(kind, key):
        ks = jax.random.split(key, 4)
        if kind == 'mlp':
            return {'w1': jax.random.normal(ks[0], (784, 64)) * 0.05, 'b1': jnp.zeros(64), 'w2': jax.random.normal(ks[1], (64, 10)) * 0.1, 'b2': jnp.zeros(10)}
        return {'k1': jax.random.normal(ks[0], (3, 3, 1, 8)) * 0.3, 'c1': jnp.zeros(8), 'k2': jax.random.normal(ks[1], (3, 3, 8, 16)) * 0.1,
                'c2': jnp.zeros(16), 'w': jax.random.normal(ks[2], (16, 10)) * 0.2, 'b': jnp.zeros(10)}

    def logits(kind, p, x, key, train):
        if kind == 'mlp':
            h = jax.nn.relu(x @ p['w1'] + p['b1'])
            if train:
                keep = jax.random.bernoulli(key, 0.8, h.shape)
                h = jnp.where(keep, h / 0.8, 0.0)
            return h @ p['w2'] + p['b2']
        conv = lambda v, k: jax.lax.conv_general_dilated(v, k, (1, 1), 'SAME' if k.shape[2] == 1 else 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        h = jax.nn.relu(conv(x, p['k1']) + p['c1'])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID')
        h = jax.nn.relu(conv(h, p['k2']) + p['c2'])
        return h.mean(axis=(1, 2)) @ p['w'] + p['b']

    for kind, what, b in CASES:
        name = f'{kind}_{what}_b{b}'
        try:
            key = jax.random.PRNGKey(0)
            p = init(kind, key)
            x = jax.random.uniform(key, (b, 784) if kind == 'mlp' else (b, 28, 28, 1))
            y = jax.random.randint(key, (b,), 0, 10)
            if what == 'train':
                def loss(p, x, y, key):
                    l = jax.nn.log_softmax(logits(kind, p, x, key, True))
                    return -jnp.mean(jnp.take_along_axis(l, y[:, None], 1))
                def _step(state, x, y):
                    p, m, v, t = state
                    t = t + 1
                    g = jax.grad(loss)(p, x, y, jax.random.fold_in(key, t))
                    m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
                    v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
                    a = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
                    p = jax.tree_util.tree_map(lambda p, m, v: p - a * m / (jnp.sqrt(v) + 1e-7), p, m, v)
                    return p, m, v, t
                step_fn = jax.jit(_step, donate_argnums=(0,))
                zeros = jax.tree_util.tree_map(jnp.zeros_like, p)
                state = [(p, zeros, jax.tree_util.tree_map(jnp.zeros_like, p), jnp.int32(0))]
                def step():
                    state[0] = step_fn(state[0], x, y)
                sync = lambda: jax.block_until_ready(state[0])
            else:
                fwd = jax.jit(lambda p, x: jax.nn.softmax(logits(kind, p, x, key, False)))
                out = [None]
                def step():
                    out[0] = fwd(p, x)
                sync = lambda: jax.block_until_ready(out[0])
            print(f'{name}\tjax\t{per_call(step, sync, REPS[b]):.2f}', flush=True)
        except Exception as e:
            print(f'{name}: JAX FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}', file=sys.stderr)


{'torch': torch_cases, 'jax': jax_cases}[sys.argv[1]]()
