# JAX's first `jit` call on the seed MLP (784-64 relu, dropout off at inference, 10 softmax), for bench/compile.ts:
# prints JSON seconds: importing jax, and the first call of the jitted predict (trace + XLA compile + run), batch 1.
import json
import time

t0 = time.perf_counter()
import jax
import jax.numpy as jnp
import numpy as np

t1 = time.perf_counter()
rng = np.random.default_rng(0)
params = {
    "w1": jnp.asarray(rng.standard_normal((784, 64), dtype=np.float32) * 0.05),
    "b1": jnp.zeros((64,), jnp.float32),
    "w2": jnp.asarray(rng.standard_normal((64, 10), dtype=np.float32) * 0.05),
    "b2": jnp.zeros((10,), jnp.float32),
}
x = jnp.asarray(rng.standard_normal((1, 784), dtype=np.float32))
jax.block_until_ready((params, x))


def predict(p, x):
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    return jax.nn.softmax(h @ p["w2"] + p["b2"], axis=-1)


t2 = time.perf_counter()
jax.block_until_ready(jax.jit(predict)(params, x))
t3 = time.perf_counter()
print(json.dumps({"importJax": t1 - t0, "firstJit": t3 - t2, "jax": jax.__version__}))
