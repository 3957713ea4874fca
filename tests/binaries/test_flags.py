"""Binaries' bad input: one line naming the flag, before any work."""
import time

import pytest

from conftest import REPO, run_binary


@pytest.mark.parametrize("args,flag", [
    (["--model=stylegan9"], "--model"),
    (["--batch_size=0"], "--batch_size"),
    (["--image_size=48"], "--image_size"),
    (["--dataset=folder", "--data_dir=/no/such/dir"], "--data_dir"),
    (["--preset=nope"], "--preset"),
    (["--steps=0"], "--steps"),
    (["--intra_op_threads=-1"], "--intra_op_threads"),
    (["--lr_schedule=linear", "--lr_hold_fraction=1"], "--lr_hold_fraction"),
    (["--model=srgan", "--perceptual_weight=0.006"], "--perceptual_weights"),
    (["--model=srgan", "--perceptual_weights=/no/vgg19.h5"], "--perceptual_weights"),
    (["--model=dcgan", "--conditional"], "--conditional"),
    (["--model=acgan", "--dataset=folder", f"--data_dir={REPO}"], "--class_subfolders"),
    (["--dataset=iclevr"], "--data_dir"),
    (["--model=dcgan", "--replay_size=10", "--replay_fraction=1.5"], "--replay_fraction"),
])
def test_bad_flags_fail_fast_with_one_line_naming_the_flag(tmp_path, args, flag):
    start = time.perf_counter()
    out = run_binary("t2i.bin.train", "--steps=4", f"--log_dir={tmp_path / 'run'}", *args)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("t2i-train: error: ") and flag in lines[0]
    assert not (tmp_path / "run").exists()  # no work was done
    assert time.perf_counter() - start < 30  # (generous) validation happens before TensorFlow is imported


def test_missing_log_dir_for_sample_and_export_is_a_clear_error(tmp_path):
    out = run_binary("t2i.bin.sample", f"--log_dir={tmp_path / 'nothing'}", f"--output={tmp_path / 'g.png'}")
    assert out.returncode == 1 and "config.json not found" in out.stderr.strip().splitlines()[-1]
    out = run_binary("t2i.bin.export", f"--log_dir={tmp_path / 'nothing'}", "--name=x")
    assert out.returncode == 1 and "config.json not found" in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", ["--replicas=3", "--replicas=0", "--mixed_precision=float16", "--mixed_precision=auto"])
def test_bench_refuses_bad_replica_counts_and_policies(flag):
    out = run_binary("t2i.bin.bench", "--batch_size=4", flag)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("t2i-bench: error: --" + flag[2:].split("=")[0])
