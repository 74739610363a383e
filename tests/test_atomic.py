"""Every file appears whole or not at all (runtime.atomic), whatever goes wrong while it is written."""

import os

import pytest
import torch

from runtime.atomic import atomic_path, stale_temporaries, temporary_name, write_atomic


def test_the_target_is_untouched_until_the_rename_and_a_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_bytes(b"ne")
        assert target.read_bytes() == b"old"  # half written: nobody sees it under the target's name
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(b"newer", target)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_writer_that_dies_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "log.jsonl"
    target.write_bytes(b"kept\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"kept\n" and sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]


def test_names_at_the_file_systems_limit_can_be_written_and_their_leftovers_found(tmp_path):
    long = "写" * 80 + ".png"  # 244 bytes in UTF-8: a temporary name made by adding to it would be too long
    assert len(long.encode()) > 234
    write_atomic(b"x", tmp_path / long)
    assert (tmp_path / long).read_bytes() == b"x"
    assert len(temporary_name(tmp_path / long).name.encode()) == 42
    left = temporary_name(tmp_path / long)
    left.write_bytes(b"half")  # what a killed run leaves
    other = temporary_name(tmp_path / "other.png")
    other.write_bytes(b"half")
    assert stale_temporaries(tmp_path, [long]) == [left]


def test_a_checkpoint_that_fails_while_saving_keeps_the_previous_one(tmp_path, monkeypatch):
    import safetensors.torch

    from train import checkpoint

    target = tmp_path / "checkpoint.safetensors"
    checkpoint.atomic_save({"w": torch.ones(2)}, target, {"step": "1"})
    before = target.read_bytes()

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(OSError):
        checkpoint.atomic_save({"w": torch.zeros(2)}, target, {"step": "2"})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]
    assert safetensors.torch.load_file(target)["w"].tolist() == [1.0, 1.0]
