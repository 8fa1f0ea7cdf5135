"""Keras reads what RNNKit writes, and takes the same training step.

Run by KerasInteropTests (Tests/TrainerTests) with a folder RNNKit filled:
  model.keras, model.weights.h5   a model RNNKit trained, with its Adam state
  expected.json                   {"x": [B, T, F] inputs, "outputs": RNNKit's predictions,
                                   "step": {"x", "y", "weights_after": [values, in the model's weight order]}}
Checks, printing each figure:
  1. keras.saving.load_model(model.keras) predicts what RNNKit predicts (1e-5), and so do the
     "extra" models (other layers) in expected.json; a stateful one twice, the second call
     continuing the first ("outputs_again");
  2. the same architecture built by Keras from the config, load_weights(model.weights.h5), same;
  3. one train_on_batch step in Keras from the loaded optimiser state equals RNNKit's next step (1e-5).
Exit status 0 when all hold. Needs keras 3 and a backend, chosen by KERAS_BACKEND (the test sets torch or jax).
"""
import json
import os
import sys

import numpy as np  # noqa: E402
import keras  # noqa: E402

folder = sys.argv[1]
expected = json.load(open(os.path.join(folder, "expected.json")))
x = np.asarray(expected["x"], dtype="float32")
outputs = np.asarray(expected["outputs"])
failures = []


def check(what, difference, tolerance=1e-5):
    print(f"{what}: largest difference {difference:.2e}")
    if not difference <= tolerance:
        failures.append(what)


model = keras.saving.load_model(os.path.join(folder, "model.keras"))
check("Keras load_model(RNNKit's .keras) predictions", np.abs(model.predict(x, verbose=0) - outputs).max())
print(f"optimizer {model.optimizer.__class__.__name__}, iterations {int(keras.ops.convert_to_numpy(model.optimizer.iterations))}")

rebuilt = keras.models.model_from_json(open(os.path.join(folder, "config.json")).read())
rebuilt.load_weights(os.path.join(folder, "model.weights.h5"))
check("Keras load_weights(RNNKit's .weights.h5) predictions", np.abs(rebuilt.predict(x, verbose=0) - outputs).max())

# Models of other layers RNNKit wrote (Bidirectional in every merge mode, go_backwards): Keras
# rebuilds them from their config and computes what RNNKit computed.
for extra in expected.get("extra", []):
    other = keras.saving.load_model(os.path.join(folder, extra["file"]))
    got = other.predict(np.asarray(extra["x"], dtype="float32"), verbose=0)
    check(f"Keras load_model({extra['file']}) predictions", np.abs(got - np.asarray(extra["outputs"])).max())
    if "outputs_again" in extra:  # stateful: the second call continues the first
        again = other.predict(np.asarray(extra["x"], dtype="float32"), verbose=0)
        check(f"Keras load_model({extra['file']}) second predictions", np.abs(again - np.asarray(extra["outputs_again"])).max())

step = expected["step"]
model.train_on_batch(np.asarray(step["x"], dtype="float32"), np.asarray(step["y"], dtype="float32"))
worst = 0.0
# RNNKit's weights in its parameter order, which is Keras's trainable_variables order.
for variable, ours in zip(model.trainable_variables, step["weights_after"], strict=True):
    theirs = keras.ops.convert_to_numpy(variable)
    worst = max(worst, np.abs(theirs - np.asarray(ours).reshape(theirs.shape)).max())
check("the next Adam step, Keras against RNNKit, weights", worst)
sys.exit(1 if failures else 0)
