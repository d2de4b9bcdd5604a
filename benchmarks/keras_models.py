"""The benchmark models written in Keras 3, and two ways to train each (``peers.py``).

Keras picks its backend from ``KERAS_BACKEND`` when it is first imported, so this
module is imported by a worker process started with that variable set (``jax`` or
``torch``). Each model gets the ``unified`` initial weights (drawn by the NumPy
backend with ``U.seed(0)``; the draw is the same on every backend), converted to
Keras' layouts:

* Dense kernel ``(in, out)`` = unified ``weight.T``;
* Conv2D kernel ``(kh, kw, in, out)`` = unified ``weight.transpose(2, 3, 1, 0)``
  (the layers run ``channels_first`` like unified's NCHW);
* BatchNormalization ``[gamma, beta, moving_mean, moving_variance]`` in unified's
  order, ``momentum=0.9`` (the same convention as unified's), ``epsilon=1e-5``;
* LSTM ``kernel = i2h_weight.T``, ``recurrent_kernel = h2h_weight.T``,
  ``bias = i2h_bias + h2h_bias`` (gate order i, f, c, o on both sides); Keras is
  batch-major, so the ``(T, N)`` word indices and labels are transposed (the mean
  over all positions does not change).

Strided 3x3 convolutions pad explicitly (``ZeroPadding2D(1)``): Keras' ``"same"``
with stride 2 pads 0 before and 1 after, unified (like torch) 1 on both sides.

Runners (``harness.Runner``), the loss is sparse softmax cross-entropy on logits
(mean), the optimizer SGD with the script's learning rate and momentum:

* ``fit``: ``model.train_on_batch(x, y)`` on NumPy batches (Keras compiles the step
  with XLA on JAX; eager on torch);
* ``loop`` on JAX: a ``jax.jit`` step of ``jax.value_and_grad`` over
  ``model.stateless_call`` and ``optimizer.stateless_apply`` (the Keras guide's
  custom training loop);
* ``loop`` on torch: a plain PyTorch loop over the Keras model (a
  ``torch.nn.Module``): ``F.cross_entropy``, ``torch.optim.SGD``, ``zero_grad``,
  ``backward``, ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from harness import Runner, simple_runner

STAGES = ((16, 1), (32, 2), (64, 2))
"""(channels, stride) of the ResNet's residual blocks, as in ``cnn_models.py``."""


def _conv(keras: Any, channels: int, kernel: int, strides: int = 1, **kw: Any) -> Any:
    return keras.layers.Conv2D(
        channels, kernel, strides=strides, data_format="channels_first", **kw
    )


def mlp(hidden: tuple[int, ...], inputs: int, outputs: int) -> tuple[Any, list[Any]]:
    """The MLP of ``train_step.py``; returns the model and its layers with weights
    in unified's parameter order."""
    import keras

    layers = [keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(outputs))
    x = inp = keras.Input((inputs,))
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x), layers


def lenet() -> tuple[Any, list[Any]]:
    """``cnn_models``' LeNet-5-style net."""
    import keras

    L = keras.layers  # noqa: N806
    pool = {"pool_size": 2, "data_format": "channels_first"}
    layers = [
        _conv(keras, 6, 5, padding="same", activation="relu"),
        L.MaxPooling2D(**pool),
        _conv(keras, 16, 5, activation="relu"),
        L.MaxPooling2D(**pool),
        L.Flatten(),  # channels_last default: flattens NCHW as it is, like unified
        L.Dense(120, activation="relu"),
        L.Dense(84, activation="relu"),
        L.Dense(10),
    ]
    x = inp = keras.Input((1, 28, 28))
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x), layers


def resnet() -> tuple[Any, list[Any]]:
    """``cnn_models``' small ResNet (BatchNorm in training mode)."""
    import keras

    L = keras.layers  # noqa: N806
    made: list[Any] = []

    def add(layer: Any) -> Any:
        made.append(layer)
        return layer

    def conv(channels: int, kernel: int, strides: int, x: Any) -> Any:
        if kernel == 3 and strides != 1:
            x = L.ZeroPadding2D(1, data_format="channels_first")(x)
            return add(_conv(keras, channels, 3, strides, use_bias=False))(x)
        pad = "same" if kernel == 3 else "valid"
        return add(
            _conv(keras, channels, kernel, strides, padding=pad, use_bias=False)
        )(x)

    def bn(x: Any) -> Any:
        return add(L.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5))(x)

    inp = keras.Input((3, 32, 32))
    x = L.ReLU()(bn(conv(16, 3, 1, inp)))
    in_channels = 16
    for channels, strides in STAGES:
        y = L.ReLU()(bn(conv(channels, 3, strides, x)))
        y = bn(conv(channels, 3, 1, y))
        if strides != 1 or channels != in_channels:
            x = bn(conv(channels, 1, strides, x))
        x = L.ReLU()(L.Add()([y, x]))
        in_channels = channels
    x = L.GlobalAveragePooling2D(data_format="channels_first")(x)
    out = add(L.Dense(10))(x)
    return keras.Model(inp, out), made


def language_model(s: dict[str, int]) -> tuple[Any, list[Any]]:
    """``lstm_step``'s language model, batch-major."""
    import keras

    L = keras.layers  # noqa: N806
    layers = [L.Embedding(s["vocab"], s["embed"])]
    layers += [L.LSTM(s["hidden"], return_sequences=True) for _ in range(s["layers"])]
    layers.append(L.Dense(s["vocab"]))
    x = inp = keras.Input((s["T"],), dtype="int32")
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x), layers


def set_weights(layers: list[Any], weights: list[np.ndarray]) -> None:
    """Give ``layers`` (in unified's parameter order) the unified ``weights``.

    LSTM layers take four unified arrays (i2h and h2h weights, i2h and h2h biases,
    as ``lstm_step`` orders them per layer); the others one per Keras variable.
    """
    it = iter(weights)
    for layer in layers:
        if layer.__class__.__name__ == "LSTM":
            wi, wh, bi, bh = (next(it) for _ in range(4))
            values = [wi.T, wh.T, bi + bh]
        else:
            values = []
            for var in layer.get_weights():
                w = next(it)
                if w.ndim == 4:
                    w = w.transpose(2, 3, 1, 0)
                elif w.ndim == 2 and layer.__class__.__name__ == "Dense":
                    w = w.T
                if w.shape != var.shape:
                    raise RuntimeError(f"{layer.name}: {w.shape} for {var.shape}")
                values.append(w)
        layer.set_weights(values)
    if next(it, None) is not None:
        raise RuntimeError("more unified weights than Keras variables")


def _compile(model: Any, lr: float, momentum: float) -> tuple[Any, Any]:
    import keras

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    model.compile(optimizer=opt, loss=loss)
    return loss, opt


def fit_runner(
    model: Any, x: np.ndarray, y: np.ndarray, lr: float, mom: float
) -> tuple[Runner, Callable[[Any], float]]:
    """``train_on_batch`` on NumPy batches; returns the runner and its loss reader."""
    _compile(model, lr, mom)

    def step() -> Any:
        return model.train_on_batch(x, y)

    return simple_runner(step), float


def loop_runner(
    model: Any, x: np.ndarray, y: np.ndarray, lr: float, mom: float
) -> tuple[Runner, Callable[[Any], float]]:
    """The custom training loop of the current Keras backend (see the module
    docstring); NumPy batches converted in the step."""
    import keras

    if keras.backend.backend() == "jax":
        return _jax_loop(model, x, y, lr, mom)
    return _torch_loop(model, x, y, lr, mom)


def _jax_loop(
    model: Any, x_np: np.ndarray, y_np: np.ndarray, lr: float, mom: float
) -> tuple[Runner, Callable[[Any], float]]:
    import jax
    import jax.numpy as jnp

    loss_fn, opt = _compile(model, lr, mom)
    opt.build(model.trainable_variables)

    def compute(tv: Any, ntv: Any, x: Any, y: Any) -> Any:
        pred, ntv = model.stateless_call(tv, ntv, x, training=True)
        return loss_fn(y, pred), ntv

    grad_fn = jax.value_and_grad(compute, has_aux=True)

    @jax.jit
    def train_step(state: Any, x: Any, y: Any) -> Any:
        tv, ntv, ov = state
        (loss, ntv), grads = grad_fn(tv, ntv, x, y)
        tv, ov = opt.stateless_apply(ov, grads, tv)
        return loss, (tv, ntv, ov)

    live = {
        "state": (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in opt.variables],
        )
    }

    def step() -> Any:
        x, y = jnp.asarray(x_np), jnp.asarray(y_np)  # NumPy batch in
        loss, live["state"] = train_step(live["state"], x, y)
        return loss

    def sync(loss: Any) -> None:
        jax.block_until_ready((loss, live["state"]))

    return simple_runner(step, sync), float


def _torch_loop(
    model: Any, x_np: np.ndarray, y_np: np.ndarray, lr: float, mom: float
) -> tuple[Runner, Callable[[Any], float]]:
    import torch
    import torch.nn.functional as F  # noqa: N812

    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mom)

    def step() -> Any:
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)  # NumPy batch in
        opt.zero_grad()
        logits = model(x, training=True)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    return simple_runner(step), lambda t: float(t.detach())
