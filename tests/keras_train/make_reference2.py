# Writes keras_reference2.json: Keras 3's numbers for masks in losses and metrics (tests/keras_train/masked_loss.test.ts)
# and the schedules, metrics and callback hooks of tests/keras_train/idioms.test.ts. Run with Keras 3 + JAX:
#   KERAS_BACKEND=jax /work/venv-keras/bin/python tests/keras_train/make_reference2.py
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
import numpy as np

out = {"keras_version": keras.__version__}
rng = np.random.default_rng(11)


def f32(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


# --- masks: token ids with padding 0 (one row all padding) through Embedding(maskZero) → Dense → Dense; the outputs
# carry the mask [n, 5], which Keras applies to the loss (apply_mask) and to the mean metrics
x = rng.integers(1, 7, size=(10, 5)).astype("int32")
for i, keep in enumerate([5, 3, 1, 4, 0, 2, 5, 3, 4, 1]):
    x[i, keep:] = 0
yb = (rng.uniform(size=(10, 5, 1)) > 0.5).astype("float32")
ys = rng.integers(0, 3, size=(10, 5)).astype("int32")
out["mask_data"] = {"x": [int(v) for v in x.ravel()], "yBinary": f32(yb), "ySparse": [int(v) for v in ys.ravel()]}


def masked_model(units, activation):
    inp = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(7, 3, mask_zero=True)(inp)
    h = keras.layers.Dense(4, activation="tanh")(h)
    return keras.Model(inp, keras.layers.Dense(units, activation=activation)(h))


out["mask_fits"] = {}
for name, units, act, loss, metrics, y in [
    ("binary", 1, "sigmoid", "binary_crossentropy", ["accuracy", "mae"], yb),
    ("sparse", 3, "softmax", "sparse_categorical_crossentropy", ["accuracy"], ys),
]:
    keras.utils.set_random_seed(3)
    m = masked_model(units, act)
    w0 = [w.copy() for w in m.get_weights()]
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=loss, metrics=metrics)
    ev0 = m.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    pred = m.predict(x, verbose=0)
    h = m.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    # fit's metrics as the TF and torch backends compute them, on the masked y_pred: JAX's train_step returns y_pred from
    # jax.value_and_grad, which drops its mask, so JAX's own fit logs unmasked metrics (its evaluate masks them). The
    # same fit replayed: each batch's predictions before its step, into masked metrics, then the step.
    keras.utils.set_random_seed(3)
    r = masked_model(units, act)
    r.set_weights(w0)
    r.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=loss)
    lf = keras.losses.BinaryCrossentropy() if units == 1 else keras.losses.SparseCategoricalCrossentropy()
    replay = {}
    for epoch in range(2):
        ms = {k: keras.metrics.get(k if k != "accuracy" else ("binary_accuracy" if units == 1 else "sparse_categorical_accuracy")) for k in metrics}
        lsum = 0.0
        for s in range(0, 10, 4):
            xb, yb_ = x[s:s + 4], y[s:s + 4]
            yp = r(xb)
            for mm in ms.values():
                mm.update_state(yb_, yp)
            lsum += float(lf(yb_, yp)) * len(xb)
            r.train_on_batch(xb, yb_)
        for k, mm in ms.items():
            replay.setdefault(k, []).append(float(mm.result()))
        replay.setdefault("loss", []).append(lsum / 10)
    assert np.allclose(replay["loss"], h.history["loss"], rtol=1e-5), (replay["loss"], h.history["loss"])
    assert all(np.allclose(a, b) for a, b in zip(r.get_weights(), m.get_weights()))
    out["mask_fits"][name] = {"history_masked_metrics": replay,
        "weights0": [f32(w) for w in w0], "shapes": [list(w.shape) for w in w0], "pred0": f32(pred),
        "evaluate0": {k: float(v) for k, v in ev0.items()},
        "history": {k: [float(v) for v in vs] for k, vs in h.history.items()}, "weights": [f32(w) for w in m.get_weights()],
    }

# eager: a loss called on a model's masked output, by reduction (the all-padding row alone: valid = 0, loss 0)
keras.utils.set_random_seed(3)
m = masked_model(1, "sigmoid")
yp = m(x)
out["mask_eager"] = {"weights": [f32(w) for w in m.get_weights()], "losses": {}}
for red in ["sum_over_batch_size", "sum", "mean"]:
    out["mask_eager"]["losses"][red] = float(keras.losses.BinaryCrossentropy(reduction=red)(yb, yp))
out["mask_eager"]["losses"]["all_padding"] = float(keras.losses.BinaryCrossentropy()(yb[4:5], m(x[4:5])))
acc = keras.metrics.BinaryAccuracy()
acc.update_state(yb[:6], m(x[:6]))
acc.update_state(yb[6:], m(x[6:]))
out["mask_eager"]["binary_accuracy"] = float(acc.result())

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_reference2.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path)
