"""Writes Tests/RNNKitTests/Fixtures/keras_masked_sequence_losses.json: Keras's float64 figures
for losses over masked sequence outputs, which ../shared/fixtures does not cover.

Run by hand (the JSON is committed; `make test` only reads it), with TensorFlow installed
(`pip install tensorflow-cpu`), as the shared fixtures were made:

    python3 Tests/Python/make_masked_loss_fixture.py

Keras runs on its TensorFlow backend in float64. (Its torch backend is not exact in float64:
a SimpleRNN's outputs there differ from numpy's by 4e-8, and the masked reduction's
`divide_no_nan` returns float32; jax in 64-bit mode fails on SimpleRNN's scan.)

Each case is Masking(0.0) in front of recurrent layers that return sequences and a per-step
Dense, so the mask reaches the loss. Keras then takes the loss as the mean over the steps the
mask keeps (`keras.src.losses.loss.apply_mask`: weight total/valid on kept steps, 0 elsewhere)
and its accuracy over those steps only. The masked steps are chosen at the start, in the middle
and at the end of sequences, and one sample is masked whole.

For each case the JSON holds the input (batch-major), labels or targets, the weights (drawn
from numpy's default_rng(seed).uniform(-0.3, 0.3) in Keras's weight order), the model's output,
the loss, the accuracy metric, every gradient, and two Adam steps (Keras defaults) taken with
`train_on_batch`, each with the loss it reported and the weights after it.
"""
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np
import tensorflow as tf
import keras
from keras.src import backend as keras_backend

keras.config.set_floatx("float64")

BATCH, STEPS, FEATURES = 6, 9, 5
# (sample, step) pairs whose features are all zero: masked at the start, middle and end, a run
# of middle steps, and sample 5 masked at every step.
MASKED = [(0, 0), (0, 1), (1, 4), (2, 7), (2, 8), (3, 2), (3, 3), (3, 4), (4, 8)] + [(5, t) for t in range(STEPS)]


def cases():
    L = keras.layers
    return [
        ("lstm_sparse_categorical", lambda: [L.LSTM(5, return_sequences=True), L.Dense(4, activation="softmax")],
         "sparse_categorical_crossentropy", keras.metrics.SparseCategoricalAccuracy, 4),
        ("gru_binary", lambda: [L.GRU(4, return_sequences=True), L.Dense(3, activation="sigmoid")],
         "binary_crossentropy", keras.metrics.BinaryAccuracy, 3),
        ("bidirectional_simple_rnn_mse", lambda: [L.Bidirectional(L.SimpleRNN(3, return_sequences=True)), L.Dense(2)],
         "mean_squared_error", None, 2),
    ]


def weight_name(variable):
    # sequential/bidirectional/forward_simple_rnn/simple_rnn_cell/kernel -> bidirectional/forward_simple_rnn/kernel
    parts = variable.path.split("/")[1:]
    return "/".join(p for p in parts if not p.endswith("_cell"))


def build(make_layers, seed):
    keras.backend.clear_session()  # each model names its layers from scratch (dense, not dense_1), as RNNKit's
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), keras.layers.Masking(0.0)] + make_layers())
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(rng.uniform(-0.3, 0.3, tuple(v.shape)))
    return model


def main(path):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    for b, t in MASKED:
        x[b, t, :] = 0
    keep = np.ones((BATCH, STEPS))
    for b, t in MASKED:
        keep[b, t] = 0
    out = {"generated_by": "Tests/Python/make_masked_loss_fixture.py",
           "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__},
           "backend": keras.backend.backend(), "dtype": "float64",
           "shape": {"batch": BATCH, "steps": STEPS, "features": FEATURES},
           "masked_steps": MASKED, "x": x.tolist(), "cases": []}
    for index, (name, make_layers, loss, metric, width) in enumerate(cases()):
        model = build(make_layers, seed=100 + index)
        if loss == "sparse_categorical_crossentropy":
            y = rng.integers(0, width, size=(BATCH, STEPS))
        elif loss == "binary_crossentropy":
            y = rng.integers(0, 2, size=(BATCH, STEPS, width)).astype(np.float64)
        else:
            y = rng.normal(size=(BATCH, STEPS, width))
        model.compile(optimizer=keras.optimizers.Adam(), loss=loss)
        names = [weight_name(v) for v in model.trainable_weights]
        weights = {n: np.asarray(v.numpy()).tolist() for n, v in zip(names, model.trainable_weights)}

        xt, yt = tf.constant(x), tf.constant(y)

        def loss_of():
            y_pred = model(xt, training=True)
            assert keras_backend.get_keras_mask(y_pred) is not None, "the mask did not reach the output"
            return model.compute_loss(x=xt, y=yt, y_pred=y_pred, training=True), y_pred

        with tf.GradientTape() as tape:
            loss_value, y_pred = loss_of()
        gradients = tape.gradient(loss_value, model.trainable_weights)
        assert loss_value.dtype == tf.float64 and all(g.dtype == tf.float64 for g in gradients)
        # The masked mean by hand, to be sure the figure is Keras's masked reduction.
        per_step = keras.losses.get(loss)(yt, y_pred).numpy()  # [B, T], mean over features
        by_hand = float((per_step * keep).sum() / keep.sum())
        loss_value = float(loss_value)
        assert abs(by_hand - loss_value) < 1e-13, (by_hand, loss_value)
        accuracy = None
        if metric is not None:
            m = metric()
            m.update_state(yt, y_pred)
            accuracy = float(m.result())

        steps = []
        for _ in range(2):
            # train_on_batch reports its loss through a float32 metric: take it in float64 here.
            before = float(loss_of()[0])
            model.train_on_batch(x, y)
            steps.append({"loss_before_step": before,
                          "weights_after_step": {n: np.asarray(v.numpy()).tolist() for n, v in zip(names, model.trainable_weights)}})
        out["cases"].append({
            "name": name, "loss": loss, "weight_order": names, "weights": weights,
            "labels" if loss == "sparse_categorical_crossentropy" else "targets": y.tolist(),
            "output": y_pred.numpy().tolist(), "loss_value": loss_value, "accuracy": accuracy,
            "gradients": {n: g.numpy().tolist() for n, g in zip(names, gradients)},
            "adam": {"steps": steps}})
        print(f"{name}: loss {loss_value:.12f}, accuracy {accuracy}, weights {names}")
    with open(path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(__file__), "..", "RNNKitTests", "Fixtures", "keras_masked_sequence_losses.json"))
