"""Loads RNNKit's safetensors into PyTorch's nn.RNN / nn.LSTM / nn.GRU + nn.Linear.

The README's recipe, run by PyTorchInteropTests. RNNKit stores Keras's layouts:
  kernel [inputs, G*units], recurrent_kernel [units, G*units], one bias [G*units]
  (GRU: [2, 3*units], an input row and a recurrent row), gates in Keras's order.
PyTorch wants weight_ih [G*units, inputs] and weight_hh [G*units, units] (transposed), two biases
(b_ih, b_hh), and GRU's gates as r, z, n where Keras has z, r, h (the first two blocks swap).
LSTM's gates i, f, c(g), o are in the same order in both.

Usage: pytorch_load.py weights.safetensors expected.json LAYER...
  expected.json: {"x": [B, T, F], "outputs": RNNKit's predictions [B, classes]}
  LAYER: the model's layer names in order (simple_rnn dense, lstm gru dense, ...)
"""
import json
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    """The tensors of a safetensors file, by name (numpy float32), and its metadata."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    kinds = {"F32": np.float32, "F64": np.float64}
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], kinds[entry["dtype"]]).reshape(entry["shape"]).astype(np.float32)
    return tensors, header.get("__metadata__", {})


def swap_first_two_blocks(matrix, units):
    """Keras GRU gates (z, r, h) to PyTorch's (r, z, n), along the first axis."""
    return np.concatenate([matrix[units:2 * units], matrix[:units], matrix[2 * units:]])


def torch_layer(kind, kernel, recurrent, bias):
    """nn.RNN, nn.LSTM or nn.GRU holding a Keras layer's weights."""
    inputs, width = kernel.shape
    units = recurrent.shape[0]
    cls = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    layer = cls(inputs, units, batch_first=True)
    w_ih, w_hh = kernel.T, recurrent.T
    if kind == "gru":
        if bias.ndim != 2:
            raise ValueError("PyTorch's GRU is Keras's reset_after=True form (bias [2, 3*units])")
        b_ih, b_hh = bias[0], bias[1]
        w_ih, w_hh = swap_first_two_blocks(w_ih, units), swap_first_two_blocks(w_hh, units)
        b_ih, b_hh = swap_first_two_blocks(b_ih, units), swap_first_two_blocks(b_hh, units)
    else:
        b_ih, b_hh = bias, np.zeros_like(bias)  # Keras has one bias; PyTorch adds two
    with torch.no_grad():
        for name, value in [("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)]:
            getattr(layer, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return layer


def main():
    tensors, _ = read_safetensors(sys.argv[1])
    expected = json.load(open(sys.argv[2]))
    layers = sys.argv[3:]
    h = torch.tensor(np.asarray(expected["x"], dtype=np.float32))
    for i, layer in enumerate(layers):
        kind = layer.rsplit("_", 1)[0] if layer.rsplit("_", 1)[-1].isdigit() else layer
        if kind == "dense":
            linear = torch.nn.Linear(*tensors[f"{layer}/kernel"].shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(tensors[f"{layer}/kernel"].T.copy()))
                linear.bias.copy_(torch.from_numpy(tensors[f"{layer}/bias"]))
            h = torch.softmax(linear(h), dim=-1)
            continue
        rnn = torch_layer(kind, tensors[f"{layer}/kernel"], tensors[f"{layer}/recurrent_kernel"], tensors[f"{layer}/bias"])
        sequence, _ = rnn(h)
        last = i + 1 < len(layers) and not layers[i + 1].startswith("dense")
        h = sequence if last else sequence[:, -1, :]
    difference = float(np.abs(h.detach().numpy() - np.asarray(expected["outputs"])).max())
    print(f"PyTorch {' → '.join(layers)} from RNNKit's safetensors: largest difference {difference:.2e}")
    sys.exit(0 if difference <= 1e-5 else 1)


if __name__ == "__main__":
    main()
