"""SPEC 14: ``unified.from_flax`` against Flax Linen itself.

The oracle is Flax: ``module.apply`` for outputs, ``jax.value_and_grad`` plus
``optax.sgd`` for one training step (BatchNorm statistics from
``mutable=["batch_stats"]``). Every test carries ``reference("flax")``: it runs
where flax is installed (environment 1) and is deselected elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

import unified as U

pytestmark = pytest.mark.reference("flax")

try:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax
except ImportError:  # every test here is deselected: flax is not installed
    nn = None

RTOL = 2e-5  # float32, relative to the scale of what is compared


def _close(got, want, what, rtol=RTOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(np.abs(want).max(), 1e-3)
    err = np.abs(got - want).max()
    assert err <= rtol * scale, f"{what}: max error {err:.2e} of the scale {scale:.2e}"


if nn is not None:

    class CNN(nn.Module):
        """Conv/BatchNorm/pools/Dense/LayerNorm/Dropout with Flax's defaults."""

        dropout: float = 0.5

        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.Conv(6, (3, 3))(x)  # SAME padding, stride 1
            x = nn.BatchNorm(use_running_average=not train, momentum=0.8)(x)
            x = nn.relu(x)
            x = nn.avg_pool(x, (2, 2), strides=(2, 2))
            x = nn.Conv(8, (3, 3), strides=2, padding="SAME")(x)  # asymmetric pad
            x = nn.silu(x)
            x = nn.max_pool(x, (2, 2), strides=(1, 1))
            x = x.reshape((x.shape[0], -1))
            x = nn.Dense(12)(x)
            x = nn.gelu(x)
            x = nn.LayerNorm()(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
            return nn.Dense(5)(x)

    class Residual(nn.Module):
        """A sub-module reused twice, a residual add and a global mean."""

        @nn.compact
        def __call__(self, x):
            block = nn.Dense(4)
            h = nn.tanh(block(x)) + x
            h = nn.sigmoid(block(h))
            return jnp.mean(h, axis=-1, keepdims=True) - h


def _cnn_batch(n=3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 10, 10, 3)).astype("float32")
    y = rng.integers(0, 5, n).astype("int64")
    return x, y


def test_cnn_outputs_equal_flax_apply(backend):
    """A compact CNN: Flax's names, values in unified's layouts, outputs equal to
    ``module.apply`` in inference mode."""
    module = CNN()
    x, _ = _cnn_batch()
    variables = module.init(jax.random.PRNGKey(0), x)
    net = U.from_flax(module, variables, x)
    names = list(net.params())
    assert names == [
        "Conv_0.kernel",
        "Conv_0.bias",
        "BatchNorm_0.scale",
        "BatchNorm_0.bias",
        "BatchNorm_0.mean",
        "BatchNorm_0.var",
        "Conv_1.kernel",
        "Conv_1.bias",
        "Dense_0.kernel",
        "Dense_0.bias",
        "LayerNorm_0.scale",
        "LayerNorm_0.bias",
        "Dense_1.kernel",
        "Dense_1.bias",
    ]
    flax_params = variables["params"]
    np.testing.assert_array_equal(
        net.params()["Dense_0.kernel"].numpy(),
        np.asarray(flax_params["Dense_0"]["kernel"]).T,
    )
    np.testing.assert_array_equal(
        net.params()["Conv_1.kernel"].numpy(),
        np.asarray(flax_params["Conv_1"]["kernel"]).transpose(3, 2, 0, 1),
    )
    assert not net.params()["BatchNorm_0.var"].trainable
    want = np.asarray(module.apply(variables, x))
    _close(U.to_numpy(net(x)), want, "logits")
    x2 = np.random.default_rng(1).standard_normal((5, 10, 10, 3)).astype("float32")
    _close(U.to_numpy(net(x2)), np.asarray(module.apply(variables, x2)), "batch 5")


def test_sequential_and_reused_module_equal_flax(backend):
    """``nn.Sequential`` names its layers ``layers_i``; a module called twice is one
    set of parameters; residual adds, broadcasts and means become graph nodes."""
    x = np.random.default_rng(2).standard_normal((3, 4)).astype("float32")
    seq = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(4), nn.elu, Residual()])
    variables = seq.init(jax.random.PRNGKey(1), x)
    net = U.from_flax(seq, variables, x)
    assert list(net.params()) == [
        "layers_0.kernel",
        "layers_0.bias",
        "layers_2.kernel",
        "layers_2.bias",
        "layers_4.Dense_0.kernel",
        "layers_4.Dense_0.bias",
    ]
    _close(U.to_numpy(net(x)), np.asarray(seq.apply(variables, x)), "outputs")


def test_embed_layernorm_dense_equal_flax(backend):
    class Tagger(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            h = nn.Embed(11, 6)(tokens)
            h = nn.LayerNorm(epsilon=1e-5, use_bias=False)(h)
            return nn.Dense(3, use_bias=False)(h)

    tokens = np.array([[1, 4, 10], [0, 2, 2]], dtype="int32")
    module = Tagger()
    variables = module.init(jax.random.PRNGKey(2), tokens)
    net = U.from_flax(module, variables, tokens)
    assert list(net.params()) == [
        "Embed_0.embedding",
        "LayerNorm_0.scale",
        "Dense_0.kernel",
    ]
    _close(U.to_numpy(net(tokens)), np.asarray(module.apply(variables, tokens)), "out")


def test_training_step_equals_optax_sgd(backend):
    """One SGD step in training mode equals ``optax.sgd`` on Flax's gradients:
    every parameter, and BatchNorm's running statistics blended with Flax's
    momentum and the *biased* batch variance."""
    module = CNN(dropout=0.0)
    x, y = _cnn_batch(4)
    variables = module.init(jax.random.PRNGKey(3), x)
    net = U.from_flax(module, variables, x)
    lr = 0.1

    def loss_fn(params):
        logits, state = module.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x,
            train=True,
            mutable=["batch_stats"],
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, state

    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        variables["params"]
    )
    opt = optax.sgd(lr)
    updates, _ = opt.update(grads, opt.init(variables["params"]))
    params = optax.apply_updates(variables["params"], updates)

    trainer = U.Trainer(net, U.SGD(net.params(), lr=lr))
    ours = float(
        trainer.step(lambda n, a, b: U.losses.softmax_cross_entropy(n(a), b), x, y)
    )
    assert abs(ours - float(loss)) <= 1e-5 * max(1.0, abs(float(loss)))
    got = net.params()
    layouts = {"Dense": (1, 0), "Conv": (3, 2, 0, 1)}
    for layer, leaves in params.items():
        for leaf, value in leaves.items():
            want = np.asarray(value)
            before = np.asarray(variables["params"][layer][leaf])
            if leaf == "kernel":
                axes = layouts[layer.split("_")[0]]
                want, before = want.transpose(axes), before.transpose(axes)
            update = np.abs(want - before).max()
            err = np.abs(got[f"{layer}.{leaf}"].numpy() - want).max()
            assert err <= 1e-3 * update + 1e-6, (
                f"{layer}.{leaf}: {err:.2e} ({update:.2e})"
            )
    for leaf, value in state["batch_stats"]["BatchNorm_0"].items():
        _close(got[f"BatchNorm_0.{leaf}"].numpy(), value, f"BatchNorm_0.{leaf}")


def test_unsupported_modules_and_primitives_listed_in_one_error(backend):
    class Odd(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(4)(x)
            x = nn.Dense(4, dtype=jnp.bfloat16)(x)  # computes in another dtype
            x = nn.ConvTranspose(2, (1,))(x[..., None])
            return jnp.sort(x.reshape((x.shape[0], -1)), axis=-1)

    x = np.ones((2, 3), "float32")
    module = Odd()
    variables = module.init(jax.random.PRNGKey(0), x)
    with pytest.raises(U.ConversionError) as info:
        U.from_flax(module, variables, x)
    message = str(info.value)
    assert "3 unsupported place(s)" in message, message
    assert "Dense_1 (Dense): computation dtype bfloat16" in message
    assert "ConvTranspose_0 (ConvTranspose): not supported by unified" in message
    assert "primitive 'sort'" in message
    with pytest.raises(TypeError, match="example inputs"):
        U.from_flax(module, variables)


def test_to_native_jax_round_trip(backend):
    """The converted net exports to ``(apply_fn, params)`` with the same names and
    bit-equal values, and ``apply_fn`` gives Flax's outputs."""
    module = CNN()
    x, _ = _cnn_batch()
    variables = module.init(jax.random.PRNGKey(4), x)
    net = U.from_flax(module, variables, x)
    apply_fn, params = net.to_native("jax")
    assert list(params) == list(net.params())
    for name, p in net.params().items():
        np.testing.assert_array_equal(np.asarray(params[name]), p.numpy())
    out = apply_fn(params, x, training=False)
    _close(np.asarray(out), np.asarray(module.apply(variables, x)), "apply_fn")


def _nnx_cnn():
    from flax import nnx

    class NNXNet(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 6, (3, 3), rngs=rngs)
            self.bn = nnx.BatchNorm(6, momentum=0.8, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)
            self.head = nnx.Sequential(
                nnx.Linear(6 * 5 * 5, 8, rngs=rngs),
                nnx.gelu,
                nnx.LayerNorm(8, rngs=rngs),
                nnx.Linear(8, 4, rngs=rngs),
            )

        def __call__(self, x):
            x = nnx.relu(self.bn(self.conv(x)))
            x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
            return self.head(self.drop(x.reshape((x.shape[0], -1))))

    model = NNXNet(nnx.Rngs(0))
    model.eval()
    return model


def test_nnx_module_outputs_equal_flax(backend):
    """An NNX module: the state it holds, under its graph paths (random-number
    streams left out), in unified's layouts; outputs equal the module's in
    inference mode; the layer classes are left as they were."""
    from flax import nnx

    model = _nnx_cnn()
    call = nnx.Linear.__call__
    x, _ = _cnn_batch()
    net = U.from_flax(model, x)
    assert nnx.Linear.__call__ is call
    assert list(net.params()) == [
        "conv.kernel",
        "conv.bias",
        "bn.scale",
        "bn.bias",
        "bn.mean",
        "bn.var",
        "head.layers.0.kernel",
        "head.layers.0.bias",
        "head.layers.2.scale",
        "head.layers.2.bias",
        "head.layers.3.kernel",
        "head.layers.3.bias",
    ]
    np.testing.assert_array_equal(
        net.params()["head.layers.3.kernel"].numpy(),
        np.asarray(model.head.layers[3].kernel.value).T,
    )
    _close(U.to_numpy(net(x)), np.asarray(model(x)), "outputs")


def test_nnx_unsupported_modules_listed(backend):
    from flax import nnx

    class Odd(nnx.Module):
        def __init__(self, rngs):
            self.up = nnx.ConvTranspose(3, 2, (2, 2), rngs=rngs)
            self.w = nnx.Param(jnp.ones((2,)))

        def __call__(self, x):
            return self.up(x) * self.w.value

    x = np.ones((1, 4, 4, 3), "float32")
    with pytest.raises(U.ConversionError) as info:
        U.from_flax(Odd(nnx.Rngs(0)), x)
    message = str(info.value)
    assert "2 unsupported place(s)" in message, message
    assert "up (ConvTranspose): not supported by unified" in message
    assert "read outside a known layer" in message
