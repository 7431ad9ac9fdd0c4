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

# --- schedules at steps 0..24
S = keras.optimizers.schedules
schedules = {
    "poly": (S.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0), {"initialLearningRate": 0.1, "decaySteps": 10, "endLearningRate": 0.01, "power": 2}),
    "poly_cycle": (S.PolynomialDecay(0.1, 6, power=0.5, cycle=True), {"initialLearningRate": 0.1, "decaySteps": 6, "power": 0.5, "cycle": True}),
    "inverse_time": (S.InverseTimeDecay(0.1, 4, 0.5), {"initialLearningRate": 0.1, "decaySteps": 4, "decayRate": 0.5}),
    "inverse_time_staircase": (S.InverseTimeDecay(0.1, 4, 0.5, staircase=True), {"initialLearningRate": 0.1, "decaySteps": 4, "decayRate": 0.5, "staircase": True}),
    "restarts": (S.CosineDecayRestarts(0.1, 3), {"initialLearningRate": 0.1, "firstDecaySteps": 3}),
    "restarts_tmul1_mmul": (S.CosineDecayRestarts(0.1, 4, t_mul=1.0, m_mul=0.5, alpha=0.1), {"initialLearningRate": 0.1, "firstDecaySteps": 4, "tMul": 1, "mMul": 0.5, "alpha": 0.1}),
    "restarts_tmul3": (S.CosineDecayRestarts(0.1, 2, t_mul=3.0, m_mul=0.8), {"initialLearningRate": 0.1, "firstDecaySteps": 2, "tMul": 3, "mMul": 0.8}),
}
out["schedules"] = {k: {"options": o, "values": [float(s(i)) for i in range(25)]} for k, (s, o) in schedules.items()}

# --- Precision/Recall with top_k and class_id, AUC multi_label, on [30, 4] multi-label data in two batches
mt = (rng.uniform(size=(30, 4)) > 0.5).astype("float32")
mp = np.round(rng.uniform(size=(30, 4)), 2).astype("float32")
mw = rng.uniform(0.2, 2, size=30).astype("float32")
out["multi_data"] = {"yTrue": f32(mt), "yPred": f32(mp), "sampleWeight": f32(mw)}
cases = {
    "precision_top2": (keras.metrics.Precision(top_k=2), ["Precision", {"topK": 2}]),
    "recall_top2": (keras.metrics.Recall(top_k=2), ["Recall", {"topK": 2}]),
    "precision_class1": (keras.metrics.Precision(class_id=1), ["Precision", {"classId": 1}]),
    "recall_class3_t03": (keras.metrics.Recall(class_id=3, thresholds=0.3), ["Recall", {"classId": 3, "thresholds": 0.3}]),
    "precision_top1_class2": (keras.metrics.Precision(top_k=1, class_id=2), ["Precision", {"topK": 1, "classId": 2}]),
    "auc_multi": (keras.metrics.AUC(multi_label=True), ["AUC", {"multiLabel": True}]),
    "auc_multi_pr": (keras.metrics.AUC(multi_label=True, curve="PR", num_thresholds=50), ["AUC", {"multiLabel": True, "curve": "PR", "numThresholds": 50}]),
    "auc_multi_weighted": (keras.metrics.AUC(multi_label=True, num_labels=4, label_weights=[1, 0.5, 2, 0]), ["AUC", {"multiLabel": True, "numLabels": 4, "labelWeights": [1, 0.5, 2, 0]}]),
    "auc_multi_majoring": (keras.metrics.AUC(multi_label=True, summation_method="majoring", num_thresholds=20), ["AUC", {"multiLabel": True, "summationMethod": "majoring", "numThresholds": 20}]),
}
out["multi_metrics"] = {}
for name, (m, spec) in cases.items():
    m.update_state(mt[:13], mp[:13])
    m.update_state(mt[13:], mp[13:])
    plain = float(m.result())
    m.reset_state()
    m.update_state(mt, mp, sample_weight=mw)
    out["multi_metrics"][name] = {"class": spec[0], "options": spec[1], "result": plain, "weighted": float(m.result())}


# --- the order of callback hooks: fit with validation data (2 epochs of 2 batches), evaluate and predict with callbacks
class Log(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

for hook in ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
             "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
             "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end"]:
    def f(self, *args, _h=hook, **kw):
        batch = args[0] if args and isinstance(args[0], int) and "batch" in _h else None
        self.calls.append(_h if batch is None else f"{_h}:{batch}")
    setattr(Log, hook, f)
cb = Log()
m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
m.compile(optimizer="sgd", loss="mse")
xs, ys = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
m.fit(xs, ys, epochs=2, batch_size=4, validation_data=(xs[:6], ys[:6]), verbose=0, callbacks=[cb])
fit_calls = cb.calls
cb.calls = []
m.evaluate(xs, ys, batch_size=3, verbose=0, callbacks=[cb])
eval_calls = cb.calls
cb.calls = []
m.predict(xs, batch_size=5, verbose=0, callbacks=[cb])
out["hooks"] = {"fit": fit_calls, "evaluate": eval_calls, "predict": cb.calls}

# --- two outputs, a sample weight per output, weighted metrics (one name shared with a plain metric)
x2 = rng.normal(size=(10, 3)).astype("float32")
ya = (rng.uniform(size=(10, 1)) > 0.5).astype("float32")
yb = rng.integers(0, 3, size=10).astype("int32")
swa, swb = rng.uniform(0.2, 2, size=10).astype("float32"), rng.uniform(0.2, 2, size=10).astype("float32")
keras.utils.set_random_seed(5)
inp = keras.Input((3,))
h = keras.layers.Dense(4, activation="tanh")(inp)
m = keras.Model(inp, [keras.layers.Dense(1, activation="sigmoid", name="a")(h), keras.layers.Dense(3, activation="softmax", name="b")(h)])
w0 = [w.copy() for w in m.get_weights()]
m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.3), loss=["binary_crossentropy", "sparse_categorical_crossentropy"], loss_weights=[1.0, 0.5],
          metrics=[["accuracy"], ["accuracy"]], weighted_metrics=[["accuracy", "mae"], ["accuracy"]])
h = m.fit(x2, [ya, yb], sample_weight=[swa, swb], epochs=2, batch_size=4, shuffle=False, verbose=0)
ev = m.evaluate(x2, [ya, yb], sample_weight=[swa, swb], batch_size=3, verbose=0, return_dict=True)
out["per_output"] = {"x": f32(x2), "ya": f32(ya), "yb": [int(v) for v in yb], "swa": f32(swa), "swb": f32(swb),
                     "weights0": [f32(w) for w in w0], "history": {k: [float(v) for v in vs] for k, vs in h.history.items()},
                     "weights": [f32(w) for w in m.get_weights()], "evaluate": {k: float(v) for k, v in ev.items()}}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_reference2.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path)
