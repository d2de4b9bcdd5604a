"""Data-parallel training (unified.distributed) against the single-process trajectory.

torch: two processes over gloo on 127.0.0.1, launched as torchrun would (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). JAX: one process with four forced
host devices (``XLA_FLAGS`` must be set before JAX is imported, hence a subprocess).
Each replica trains the net of :mod:`distributed_worker` (BatchNorm, a shared Dense)
for 10 steps with SGD (momentum) and Adam, BatchNorm statistics per replica and
synchronized; the test trains the same net in this process on the whole batch
(``value_and_grad`` on the concatenated batch: the oracle) and compares. A checkpoint
saved by rank 0 is loaded by every rank. NumPy and MXNet have a world of one replica.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import unified as U
from unified_conformance import distributed_worker as worker
from unified_conformance.helpers import assert_close

# 10 float32 steps summed in another order (Adam divides by the gradients' size,
# so its rounding differences grow a little): relative 1e-4
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
TIMEOUT = 150  # seconds: a hung collective fails the test instead of stalling CI
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "backends"), str(ROOT / "conformance")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _launch(
    backend: str, tmp_path: Path, processes: int
) -> list[dict[str, np.ndarray]]:
    """Run the worker in ``processes`` processes; return what each rank wrote."""
    port = str(_free_port())
    procs = []
    for rank in range(processes):
        if backend == "torch":
            env = _environment(
                RANK=str(rank),
                WORLD_SIZE=str(processes),
                LOCAL_RANK=str(rank),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
                OMP_NUM_THREADS="1",
            )
        else:
            env = _environment(XLA_FLAGS="--xla_force_host_platform_device_count=4")
        out = tmp_path / f"rank{rank}.npz"
        command = [sys.executable, "-m", "unified_conformance.distributed_worker"]
        with (tmp_path / f"rank{rank}.log").open("w") as log:  # a file never fills up
            procs.append(
                subprocess.Popen(
                    [*command, backend, str(out)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        for p in procs:
            p.wait(timeout=TIMEOUT)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, p in enumerate(procs):
        log = (tmp_path / f"rank{rank}.log").read_text()
        assert p.returncode == 0, log[-4000:]
    return [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(processes)]


def _reference(config: str, replicas: int, rows: int = worker.ROWS) -> dict:
    """The single-process trajectory on the whole batch (per-replica statistics:
    the BatchNorm splits the batch into the replicas' shares)."""
    _, sync = worker.CONFIGS[config]
    net, _, _ = worker.trajectory(
        config, replica_groups=1 if sync else replicas, rows=rows
    )
    return worker.values(net)


def _check(ranks: list[dict], backend: str) -> None:
    replicas = int(ranks[0]["replicas"])
    first = ranks[0]
    for config, (_, sync) in worker.CONFIGS.items():
        expected = _reference(config, replicas)
        for name, value in expected.items():
            got = first[f"{config}/final/{name}"]
            assert_close(
                got, value, f"{backend} {config}: {name} after 10 steps", **TOLERANCE
            )
        # every replica starts bitwise identical (seed-drawn host values) and stays
        # so: the all-reduced gradients are bitwise the same on every rank
        for other in ranks[1:]:
            for name in worker.values(worker.build("sgd")[0]):
                key = f"{config}/initial/{name}"
                np.testing.assert_array_equal(other[key], first[key])
            for name in expected:
                if sync or not name.startswith("bn.running"):
                    key = f"{config}/final/{name}"
                    np.testing.assert_array_equal(other[key], first[key])
    # the checkpoint rank 0 saved is what every rank loads
    for r in ranks:
        for name in worker.values(worker.build("adam")[0]):
            np.testing.assert_array_equal(
                r[f"loaded/{name}"], first[f"adam/final/{name}"]
            )
        assert (r["loaded_steps"] == worker.STEPS).all()


@pytest.mark.only_backends("torch")
def test_torch_two_processes_match_one_process(backend, tmp_path):
    ranks = _launch("torch", tmp_path, 2)
    assert [int(r["replicas"]) for r in ranks] == [2, 2]
    assert [int(r["rank"]) for r in ranks] == [0, 1]
    _check(ranks, "torch")
    # per-replica statistics: each process keeps its own running statistics
    assert not np.array_equal(
        ranks[0]["sgd/final/bn.running_mean"], ranks[1]["sgd/final/bn.running_mean"]
    )
    # unequal local batches (5 and 4 rows) weigh each replica by its rows
    expected = worker.values(worker.unequal()[0])
    for name, value in expected.items():
        got = ranks[0][f"unequal/final/{name}"]
        assert_close(got, value, f"torch, 5 + 4 rows: {name}", **TOLERANCE)
    # ... which synchronized BatchNorm statistics refuse, on every rank alike
    for r in ranks:
        assert "equal local batches" in str(r["unequal_sync_error"])


@pytest.mark.only_backends("jax")
def test_jax_four_devices_match_one_device(backend, tmp_path):
    (found,) = _launch("jax", tmp_path, 1)
    assert int(found["replicas"]) == 4
    assert found["shard_rows"].tolist() == [2, 2, 2, 2]
    _check([found], "jax")


@pytest.mark.only_backends("numpy", "mxnet")
def test_one_replica_world_without_an_engine(backend):
    world = U.distributed.init()
    assert (world.replicas, world.rank, world.is_main) == (1, 0, True)
    with pytest.raises(
        U.distributed.DistributedUnsupportedError, match="torch and jax"
    ):
        U.distributed.init(processes=2)
    # a step under the world of one replica is the plain step, bitwise
    net, opt, _ = worker.trajectory("adam", world)
    expected = _reference("adam", 1)
    for name, value in worker.values(net).items():
        np.testing.assert_array_equal(value, expected[name])
