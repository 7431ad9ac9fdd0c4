# Writes keras_reference.json: Keras 3's own numbers for tests/keras_train (schedules, clipped fits with sample and class
# weights, AUC/Precision/Recall/TopK, EarlyStopping/ReduceLROnPlateau decisions). Run with Keras 3 + JAX:
#   KERAS_BACKEND=jax /work/venv-keras/bin/python tests/keras_train/make_reference.py
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
import numpy as np

S = keras.optimizers.schedules
out = {"keras_version": keras.__version__}


def f32(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


# --- schedules at steps 0..15
schedules = {
    "exp": (S.ExponentialDecay(0.1, 3, 0.5), {"initialLearningRate": 0.1, "decaySteps": 3, "decayRate": 0.5}),
    "exp_staircase": (S.ExponentialDecay(0.1, 3, 0.5, staircase=True), {"initialLearningRate": 0.1, "decaySteps": 3, "decayRate": 0.5, "staircase": True}),
    "cosine": (S.CosineDecay(0.1, 10, alpha=0.1), {"initialLearningRate": 0.1, "decaySteps": 10, "alpha": 0.1}),
    "cosine_warmup": (S.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=4), {"initialLearningRate": 0.0, "decaySteps": 10, "warmupTarget": 0.1, "warmupSteps": 4}),
    "piecewise": (S.PiecewiseConstantDecay([3, 7], [0.1, 0.05, 0.01]), {"boundaries": [3, 7], "values": [0.1, 0.05, 0.01]}),
}
out["schedules"] = {k: {"options": o, "values": [float(s(i)) for i in range(16)]} for k, (s, o) in schedules.items()}

# --- fits: Dense(3, relu) -> Dense(1, sigmoid), fixed weights, no shuffle, two epochs of batches of 4
rng = np.random.default_rng(7)
x = rng.normal(size=(12, 4)).astype("float32")
y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
sw = rng.uniform(0.2, 2.0, size=12).astype("float32")
w0 = [rng.normal(size=(4, 3)).astype("float32") * 0.8, rng.normal(size=3).astype("float32") * 0.1,
      rng.normal(size=(3, 1)).astype("float32") * 0.8, rng.normal(size=1).astype("float32") * 0.1]
out["fit_data"] = {"x": f32(x), "y": f32(y), "sampleWeight": f32(sw), "weights": [f32(w) for w in w0]}
fits = {
    "sgd_exp_clipnorm_sample_weight": (
        lambda: keras.optimizers.SGD(learning_rate=S.ExponentialDecay(0.5, 2, 0.5, staircase=True), clipnorm=0.5),
        {"sample_weight": sw}),
    "adam_cosine_globalclip_class_weight": (
        lambda: keras.optimizers.Adam(learning_rate=S.CosineDecay(0.05, 5, alpha=0.1, warmup_target=0.1, warmup_steps=2), global_clipnorm=0.3),
        {"class_weight": {0: 0.5, 1: 3.0}}),
    "rmsprop_piecewise_clipvalue": (
        lambda: keras.optimizers.RMSprop(learning_rate=S.PiecewiseConstantDecay([2, 4], [0.01, 0.005, 0.001]), clipvalue=0.05),
        {}),
}
out["fits"] = {}
for name, (opt, kw) in fits.items():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    m.set_weights(w0)
    m.compile(optimizer=opt(), loss="binary_crossentropy",
              metrics=["accuracy", keras.metrics.AUC(name="auc"), keras.metrics.AUC(curve="PR", name="pr_auc"), keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")])
    h = m.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0, **kw)
    ev = m.evaluate(x, y, sample_weight=sw, batch_size=5, verbose=0, return_dict=True)
    out["fits"][name] = {"history": {k: [float(v) for v in vs] for k, vs in h.history.items()}, "weights": [f32(w) for w in m.get_weights()],
                         "evaluate_weighted": {k: float(v) for k, v in ev.items()}}

# --- metrics on fixed data
yt = (rng.uniform(size=(40, 1)) > 0.4).astype("float32")
yp = rng.uniform(size=(40, 1)).astype("float32")
mw = rng.uniform(0, 2, size=40).astype("float32")
cases = {
    "auc_roc": (keras.metrics.AUC(), {}),
    "auc_pr": (keras.metrics.AUC(curve="PR"), {"curve": "PR"}),
    "auc_roc_7": (keras.metrics.AUC(num_thresholds=7), {"numThresholds": 7}),
    "auc_pr_majoring_9": (keras.metrics.AUC(num_thresholds=9, curve="PR", summation_method="majoring"), {"numThresholds": 9, "curve": "PR", "summationMethod": "majoring"}),
    "auc_roc_minoring_thresholds": (keras.metrics.AUC(thresholds=[0.25, 0.5, 0.75], summation_method="minoring"), {"thresholds": [0.25, 0.5, 0.75], "summationMethod": "minoring"}),
}
out["metric_data"] = {"yTrue": f32(yt), "yPred": f32(yp), "sampleWeight": f32(mw)}
out["metrics"] = {}
for name, (m, opts) in cases.items():
    m.update_state(yt[:25], yp[:25])
    m.update_state(yt[25:], yp[25:])
    plain = float(m.result())
    m.reset_state()
    m.update_state(yt, yp, sample_weight=mw)
    out["metrics"][name] = {"options": opts, "result": plain, "weighted": float(m.result())}
for cls, key in [(keras.metrics.Precision, "precision"), (keras.metrics.Recall, "recall")]:
    for th in [0.3, 0.5, 0.7]:
        m = cls(thresholds=th)
        m.update_state(yt, yp)
        plain = float(m.result())
        m.reset_state()
        m.update_state(yt, yp, sample_weight=mw)
        out["metrics"][f"{key}_{th}"] = {"options": {"thresholds": th}, "result": plain, "weighted": float(m.result())}
# top-k with ties: predictions rounded to one decimal
tk_true = np.eye(6, dtype="float32")[rng.integers(0, 6, size=30)]
tk_pred = np.round(rng.uniform(size=(30, 6)), 1).astype("float32")
out["topk_data"] = {"yTrue": f32(tk_true), "yPred": f32(tk_pred)}
out["topk"] = {}
for k in [1, 2, 3, 5]:
    m = keras.metrics.TopKCategoricalAccuracy(k=k)
    m.update_state(tk_true, tk_pred)
    out["topk"][str(k)] = float(m.result())


# --- callbacks on scripted logs: which epoch stops, what the learning rate becomes
class Stub:
    def __init__(self):
        self.stop_training = False
        self.optimizer = keras.optimizers.SGD(learning_rate=0.1)
        self.metrics = []

    def get_weights(self):
        return []


val_loss = [1.0, 0.8, 0.79995, 0.81, 0.7, 0.71, 0.72, 0.69, 0.695, 0.7, 0.71, 0.72, 0.73, 0.74]
acc = [0.5, 0.6, 0.6, 0.65, 0.64, 0.66, 0.66, 0.66, 0.7, 0.69, 0.69, 0.69, 0.69, 0.7]
es_cases = {
    "patience2": {"patience": 2},
    "min_delta": {"patience": 1, "min_delta": 0.02},
    "baseline": {"patience": 3, "baseline": 0.75},
    "start_from_epoch": {"patience": 0, "start_from_epoch": 3},
    "acc_max": {"monitor": "accuracy", "patience": 2, "mode": "max"},
}
out["callback_logs"] = {"val_loss": val_loss, "accuracy": acc}
out["early_stopping"] = {}
for name, kw in es_cases.items():
    cb = keras.callbacks.EarlyStopping(**kw)
    cb.set_model(Stub())
    cb.on_train_begin()
    stopped = None
    for e in range(len(val_loss)):
        cb.on_epoch_end(e, {"val_loss": val_loss[e], "accuracy": acc[e]})
        if cb.model.stop_training:
            stopped = e
            break
    out["early_stopping"][name] = {"options": kw, "stopped": stopped, "best_epoch": cb.best_epoch}
out["reduce_lr"] = {}
for name, kw in {"patience1": {"patience": 1, "factor": 0.5}, "cooldown": {"patience": 1, "factor": 0.5, "cooldown": 2, "min_lr": 0.02}}.items():
    cb = keras.callbacks.ReduceLROnPlateau(**kw)
    cb.set_model(Stub())
    cb.on_train_begin()
    lrs = []
    for e in range(len(val_loss)):
        logs = {"val_loss": val_loss[e]}
        cb.on_epoch_end(e, logs)
        lrs.append(float(cb.model.optimizer.learning_rate))
    out["reduce_lr"][name] = {"options": kw, "lr": lrs}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_reference.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path)
