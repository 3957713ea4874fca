"""Two `t2i-train --strategy=multi_worker` processes on 127.0.0.1 train together; the chief's checkpoint resumes.

Each worker gets a TF_CONFIG naming both (free ports picked by binding port 0). Worker 0 is the chief: it alone
writes into --log_dir; worker 1 checkpoints into a scratch folder of its own that it removes. Every process is
bounded by a timeout and killed if the test fails.
"""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_binary

TIMEOUT = 420  # seconds for both workers together (TensorFlow start-up dominates on a loaded 2-core machine)
TRAIN_ARGS = ["--model=dcgan", "--dataset=shapes", "--image_size=32", "--batch_size=4", "--num_examples=16",
              "--gf_dim=8", "--df_dim=8", "--max_filters=32", "--checkpoint_every=2", "--sample_every=2",
              "--log_every=1", "--num_samples=4"]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(log_dir, steps, scratch):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        # Each worker's temporary folder is its own, so the test can see what a non-chief leaves behind.
        tmp = scratch / f"tmp{index}"
        tmp.mkdir(exist_ok=True)
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO,
                   TMPDIR=str(tmp))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "t2i.bin.train", "--strategy=multi_worker", f"--steps={steps}",
             f"--log_dir={log_dir}", *TRAIN_ARGS],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    return processes


def _wait(processes, timeout):
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 1))
            outputs.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


@pytest.mark.slow
def test_two_workers_train_and_the_chiefs_checkpoint_resumes(tmp_path):
    log_dir = tmp_path / "run"
    processes = _start_workers(log_dir, steps=2, scratch=tmp_path)
    outputs = _wait(processes, TIMEOUT)
    for index, (code, stdout, stderr) in enumerate(outputs):
        assert code == 0, f"worker {index}:\n{stdout[-2000:]}\n{stderr[-3000:]}"

    chief_out = outputs[0][1]
    assert "Done at step 2" in chief_out
    checkpoints = sorted(p.name for p in (log_dir / "checkpoints").iterdir())
    assert "ckpt-2.index" in checkpoints
    # Only the chief wrote into the run directory (one TensorBoard writer, one set of samples) ...
    assert (log_dir / "samples.png").exists() and (log_dir / "losses.csv").exists()
    assert len(list((log_dir / "tensorboard").iterdir())) == 1
    assert "Done at step" not in outputs[1][1]
    # ... and the other worker removed its scratch checkpoints.
    assert list((tmp_path / "tmp1").iterdir()) == []
    rows = (log_dir / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [row.split(",")[0] for row in rows[1:]] == ["1", "2"]

    # One process (MirroredStrategy over this machine's one device) continues from the chief's step-2 checkpoint.
    out = run_binary("t2i.bin.train", "--strategy=mirrored", "--steps=4", f"--log_dir={log_dir}", *TRAIN_ARGS,
                     timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "at step 2." in out.stdout and "Done at step 4" in out.stdout
    assert (log_dir / "checkpoints" / "ckpt-4.index").exists()
