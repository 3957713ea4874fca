"""t2i-bench end to end: train and sample lines, per replica count and precision."""
import re

import pytest

from conftest import run_binary


@pytest.mark.slow
def test_bench_prints_train_and_sample_throughput_per_replica_count_and_precision():
    out = run_binary("t2i.bin.bench", "--image_size=32", "--batch_size=4", "--steps=1", "--sample_steps=1",
                     "--warmup=1", "--jit_compile=off", "--replicas=1,2", "--mixed_precision=mixed_float16")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    # The single-device float32 figure keeps its line; replica and precision figures follow it.
    train = [line for line in lines if line.startswith("train ") and "replicas=" not in line]
    sample = [line for line in lines if line.startswith("sample ")]
    assert len(train) == 1 and re.search(r"\b\d+(\.\d+)? img/s", train[0]), out.stdout
    assert len(sample) == 1 and re.search(r"\b\d+(\.\d+)? img/s", sample[0]), out.stdout
    assert float(re.search(r"([\d.]+) img/s", train[0]).group(1)) > 0
    scaled = {}
    for line in lines:
        match = re.match(r"train dcgan32 batch=4 replicas=(\d) precision=(\w+) jit_compile=off: ([\d.]+) img/s "
                         r"\((\d+) ms/step.*; ([\d.]+)x (one device|float32)\)$", line)
        if match:
            scaled[match.group(1), match.group(2)] = float(match.group(3)), float(match.group(5))
    assert set(scaled) == {("1", "float32"), ("2", "float32"), ("1", "mixed_float16")}, out.stdout
    assert all(rate > 0 and ratio > 0 for rate, ratio in scaled.values())
    assert "img/s per replica" in next(line for line in lines if "replicas=2" in line)
