"""Checkpoint/restart: round trips, checksum, refusal of foreign files and unsupported values,
atomic writes (no partial or temporary files), and a coupled run restored with its RNG streams."""
import math
import os

import h5py
import numpy as np
import pytest

from bridge import checkpoint
from bridge.errors import SetupError
from bridge.ledger import Ledger
from bridge.scheduler import Participant, Scheduler


def sample_parts():
    rng = np.random.default_rng(0)
    return {
        "engines/md": {
            "positions": rng.normal(size=(5, 3)),
            "ids": np.arange(5, dtype=np.int32),
            "mask": np.array([True, False, True]),
            "blob": bytes(range(256)) * 3,
            "empty": np.zeros((0, 3)),
            "scalar_array": np.array(2.5),
            "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
        },
        "engines/fe": {"u": rng.normal(size=40).astype(np.float32), "name": "heat — ütf8",
                       "step": 12, "big": 2 ** 62 + 1, "dt": 0.1 + 0.2, "converged": True, "flag": False,
                       "nothing": b"", "label": ""},
        "core/scheduler": {"window_index": np.int64(3), "t0": np.float64(-1.25)},
    }


def assert_parts_equal(got, want):
    assert set(got) == set(want)
    for part, entries in want.items():
        assert set(got[part]) == set(entries), part
        for key, value in entries.items():
            out = got[part][key]
            if isinstance(value, np.ndarray):
                assert isinstance(out, np.ndarray) and out.dtype == value.dtype and out.shape == value.shape
                np.testing.assert_array_equal(out, value)
            else:
                assert type(out) is type(value.item() if isinstance(value, np.generic) else value), (part, key)
                assert out == value, (part, key)


def test_round_trip_of_every_supported_type(tmp_path):
    parts = sample_parts()
    path = checkpoint.save(tmp_path / "run.h5", parts, metadata={"note": "test"})
    assert path == tmp_path / "run.h5"
    assert_parts_equal(checkpoint.load(path), parts)
    assert os.listdir(tmp_path) == ["run.h5"]  # no temporary file left behind


def test_an_empty_part_survives(tmp_path):
    checkpoint.save(tmp_path / "c.h5", {"engines/stateless": {}, "core/x": {"a": 1}})
    assert checkpoint.load(tmp_path / "c.h5") == {"engines/stateless": {}, "core/x": {"a": 1}}


def test_a_flipped_byte_in_a_dataset_is_detected(tmp_path):
    path = checkpoint.save(tmp_path / "c.h5", sample_parts())
    with h5py.File(path, "r+") as f:
        blob = f["engines/md/blob"][()]
        blob[100] ^= 0x01
        f["engines/md/blob"][...] = blob
    with pytest.raises(SetupError, match="SHA-256") as exc:
        checkpoint.load(path)
    assert exc.value.fix


def test_an_edited_array_or_attribute_is_detected(tmp_path):
    path = checkpoint.save(tmp_path / "c.h5", sample_parts())
    with h5py.File(path, "r+") as f:
        f["engines/md/positions"][0, 0] += 1e-12
    with pytest.raises(SetupError, match="SHA-256"):
        checkpoint.load(path)
    path = checkpoint.save(tmp_path / "d.h5", sample_parts())
    with h5py.File(path, "r+") as f:
        f["engines/fe"].attrs["step"] = 13
    with pytest.raises(SetupError, match="SHA-256"):
        checkpoint.load(path)


def test_files_not_written_by_us_are_refused(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file\n")
    with pytest.raises(SetupError, match="not a readable HDF5 file"):
        checkpoint.load(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(SetupError, match="not an msbridge checkpoint") as exc:
        checkpoint.load(foreign)
    assert exc.value.fix
    with pytest.raises(SetupError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.h5")


@pytest.mark.parametrize("value", [
    {"nested": 1}, [1.0, 2.0], None, 1 + 2j, object(),
    np.array([1, "a"], dtype=object),
    np.array(["unicode", "text"]),
    np.zeros(2, dtype="datetime64[s]"),
    np.zeros(2, dtype=[("a", "f8"), ("b", "O")]),
    2 ** 64, -(2 ** 63) - 1,
    "NUL\x00inside",
])
def test_unsupported_values_are_refused_before_touching_the_disk(tmp_path, value):
    with pytest.raises(SetupError) as exc:
        checkpoint.save(tmp_path / "c.h5", {"engines/md": {"ok": np.ones(3), "bad": value}})
    assert exc.value.fix
    assert os.listdir(tmp_path) == []  # neither the checkpoint nor a temporary file


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "__kind__x", "__part__"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(SetupError, match="invalid checkpoint"):
        checkpoint.save(tmp_path / "c.h5", {"engines/md": {name: 1.0}})
    with pytest.raises(SetupError, match="invalid checkpoint"):
        checkpoint.save(tmp_path / "c.h5", {name: {"x": 1.0}})
    assert os.listdir(tmp_path) == []


def test_an_existing_checkpoint_stays_intact_when_a_later_save_fails(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    good = {"engines/md": {"x": np.arange(4.0)}}
    checkpoint.save(path, good)
    # 1. refused value: nothing written
    with pytest.raises(SetupError):
        checkpoint.save(path, {"engines/md": {"x": {"not": "storable"}}})
    assert_parts_equal(checkpoint.load(path), good)

    # 2. the disk fails after the temporary file was written (fsync error)
    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(path, {"engines/md": {"x": np.zeros(4)}})
    monkeypatch.undo()
    assert_parts_equal(checkpoint.load(path), good)
    assert os.listdir(tmp_path) == ["c.h5"]


# --- a coupled run -----------------------------------------------------------------------

class FakeEngine:
    """A particle engine reduced to what checkpointing needs: a state that evolves randomly."""

    def __init__(self, n=4, seed=0):
        self.x = np.zeros((n, 3))
        self.steps = 0
        self.rng = np.random.default_rng(seed)

    def advance(self, dt):
        self.x = self.x + dt * self.rng.normal(size=self.x.shape)
        self.steps += 1

    def get_state(self):
        return {"x": self.x.copy(), "steps": self.steps}

    def set_state(self, state):
        self.x, self.steps = np.array(state["x"]), int(state["steps"])


class Stateless:
    def get_state(self):
        return {}

    def set_state(self, state):
        self.restored = dict(state)


def test_save_run_restore_run_continues_the_same_trajectory(tmp_path):
    noise = np.random.default_rng(123)
    eng, aux = FakeEngine(), Stateless()
    sched = Scheduler(0.5, [Participant("md", eng.advance, substeps=2)])
    led = Ledger()
    sched.run(3, show_progress=False)
    led.transfer(0, "md/fe", "energy", 1.25, 1.25)
    noise.normal(size=10)  # advance the stream before saving
    path = checkpoint.save_run(tmp_path / "run.h5", engines={"md": eng, "aux": aux}, scheduler=sched,
                               ledger=led, rngs={"noise": noise}, extra={"averages": {"rho": np.ones(3)}})
    expected_next = noise.normal(size=5)  # what the stream gives after the checkpoint
    x_saved, steps_saved = eng.x.copy(), eng.steps

    eng2, aux2, noise2 = FakeEngine(seed=99), Stateless(), np.random.default_rng(0)
    sched2 = Scheduler(0.5, [Participant("md", eng2.advance, substeps=2)])
    out = checkpoint.restore_run(path, engines={"md": eng2, "aux": aux2}, scheduler=sched2, rngs={"noise": noise2})
    np.testing.assert_array_equal(eng2.x, x_saved)
    assert eng2.steps == steps_saved == 6 and aux2.restored == {}
    assert sched2.k == 3 and sched2.time == sched.time
    np.testing.assert_array_equal(noise2.normal(size=5), expected_next)
    assert out["ledger"].transfers == led.transfers
    np.testing.assert_array_equal(out["extra"]["averages"]["rho"], np.ones(3))


def test_restore_run_names_what_is_missing(tmp_path):
    path = checkpoint.save_run(tmp_path / "run.h5", engines={"md": FakeEngine()})
    with pytest.raises(SetupError, match="no state for engine 'fe'"):
        checkpoint.restore_run(path, engines={"fe": FakeEngine()})
    with pytest.raises(SetupError, match="core/scheduler"):
        checkpoint.restore_run(path, scheduler=Scheduler(1.0, [Participant("a", lambda dt: None)]))
    with pytest.raises(SetupError, match="core/rng"):
        checkpoint.restore_run(path, rngs={"noise": np.random.default_rng()})
    path = checkpoint.save_run(tmp_path / "run2.h5", rngs={"a": np.random.default_rng(1)})
    with pytest.raises(SetupError, match="RNG stream 'b'"):
        checkpoint.restore_run(path, rngs={"b": np.random.default_rng()})
    assert checkpoint.restore_run(path)["ledger"] is None


def test_float_values_are_exact(tmp_path):
    vals = {"third": 1 / 3, "tiny": 5e-324, "neg_zero": -0.0, "nan": math.nan, "f32": np.float32(0.1)}
    got = checkpoint.load(checkpoint.save(tmp_path / "f.h5", {"p": vals}))["p"]
    assert got["third"] == 1 / 3 and got["tiny"] == 5e-324
    assert math.copysign(1.0, got["neg_zero"]) == -1.0 and math.isnan(got["nan"])
    assert got["f32"] == float(np.float32(0.1))
