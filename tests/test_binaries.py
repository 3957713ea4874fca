"""The absl binaries end to end, in fresh processes: bad input, train → resume → sample → export → serve, kill -9."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, run_binary, run_python


@pytest.mark.parametrize("args,flag", [
    (["--model=stylegan9"], "--model"),
    (["--batch_size=0"], "--batch_size"),
    (["--image_size=48"], "--image_size"),
    (["--dataset=folder", "--data_dir=/no/such/dir"], "--data_dir"),
    (["--preset=nope"], "--preset"),
    (["--steps=0"], "--steps"),
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


@pytest.mark.slow
def test_train_resume_sample_export_and_serve_in_fresh_processes(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    train_args = ["--model=dcgan", "--dataset=shapes", "--image_size=32", "--batch_size=8", "--steps=4",
                  f"--log_dir={run_dir}", "--num_examples=64", "--gf_dim=16", "--df_dim=16"]
    out = run_binary("t2i.bin.train", *train_args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run_dir / "checkpoints" / "ckpt-4.index").exists()
    assert (run_dir / "samples.png").exists() and (run_dir / "loss_curves.png").exists()

    out = run_binary("t2i.bin.train", *train_args[:4], "--steps=6", *train_args[5:])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Resumed from" in out.stdout and "at step 4" in out.stdout
    assert (run_dir / "checkpoints" / "ckpt-6.index").exists()

    grid_path = tmp_path / "grid.png"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid_path}", "--num_samples=9")
    assert out.returncode == 0, out.stderr[-2000:]
    assert grid_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for version in (1, 2):
        out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=shapes",
                         "--print_request")
        assert out.returncode == 0, out.stderr[-2000:]
        assert (export_dir / "shapes" / str(version) / "saved_model.pb").exists()
    request = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.asarray(request["inputs"]["noise"]).shape == (1, 100)

    out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=shapes",
                     "--print_request", "--request_signature=seeded")
    assert out.returncode == 0, out.stderr[-2000:]
    request = json.loads(out.stdout.strip().splitlines()[-1])
    assert request == {"signature_name": "seeded", "inputs": {"seed": [0]}}

    # The README's saved_model_cli commands: both signatures listed, and `run` on the seeded one.
    saved_model_cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    version_dir = str(export_dir / "shapes" / "1")
    cli = subprocess.run([saved_model_cli, "show", "--dir", version_dir, "--all"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    for expected in ("signature_def['serving_default']", "signature_def['seeded']", "inputs['noise']",
                     "inputs['seed']", "dtype: DT_INT64", "outputs['images']", "dtype: DT_UINT8",
                     "outputs['images_float']", "shape: (-1, 32, 32, 3)"):
        assert expected in cli.stdout, expected
    cli = subprocess.run([saved_model_cli, "run", "--dir", version_dir, "--tag_set", "serve", "--signature_def",
                          "seeded", "--input_exprs", "seed=[3,5]", "--outdir", str(tmp_path / "cli")],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    from_cli = np.load(tmp_path / "cli" / "images.npy")
    assert from_cli.dtype == np.uint8 and from_cli.shape == (2, 32, 32, 3)

    # A fresh interpreter that never imports t2i loads and calls the export: serving_default with noise, and seeded
    # (reproducible, one seed names one image whatever the batch, equal to saved_model_cli's output).
    code = f"""
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({str(export_dir / 'shapes' / '2')!r})
out = loaded.signatures["serving_default"](noise=tf.random.normal([3, 100]))
print(out["images"].dtype.name, tuple(out["images"].shape), out["images_float"].dtype.name,
      float(tf.reduce_min(out["images_float"])) >= -1.0, float(tf.reduce_max(out["images_float"])) <= 1.0)
seeded = loaded.signatures["seeded"]
pair = seeded(seed=tf.constant([3, 5], tf.int64))["images"].numpy()
np.save({str(tmp_path / "python.npy")!r}, pair)
print("same", np.array_equal(pair, seeded(seed=tf.constant([3, 5], tf.int64))["images"].numpy()),
      np.array_equal(pair[1], seeded(seed=tf.constant([5], tf.int64))["images"].numpy()[0]),
      not np.array_equal(pair[0], pair[1]))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2].endswith("uint8 (3, 32, 32, 3) float32 True True") and lines[-1] == "same True True True"
    np.testing.assert_array_equal(np.load(tmp_path / "python.npy"), from_cli)  # versions 1 and 2: same weights


@pytest.mark.slow
def test_acgan_trains_samples_by_label_name_and_serves_labels(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    out = run_binary("t2i.bin.train", "--model=acgan", "--image_size=32", "--batch_size=8", "--steps=2",
                     "--num_examples=16", "--gf_dim=8", "--df_dim=8", "--condition_dim=8", f"--log_dir={run_dir}")
    assert out.returncode == 0, out.stderr[-2000:]

    grid = tmp_path / "grid.png"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid}", "--num_samples=4",
                     "--labels=red circle,blue square", "--labels=7")
    assert out.returncode == 0, out.stderr[-2000:]
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid}", "--labels=pink cube")
    assert out.returncode == 1 and "unknown label 'pink cube'" in out.stderr.strip().splitlines()[-1]

    out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=acgan",
                     "--print_request")
    assert out.returncode == 0, out.stderr[-2000:]
    request = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(request["inputs"]) == {"noise", "labels"}
    assert np.asarray(request["inputs"]["labels"]).shape == (1, 24)

    out = run_binary("t2i.bin.sample", f"--saved_model={export_dir / 'acgan' / '1'}", f"--output={grid}",
                     "--num_samples=4", "--labels=green triangle")
    assert out.returncode == 0, out.stderr[-2000:]

    # A fresh interpreter without t2i feeds multi-hot labels to the served signature.
    code = f"""
import numpy as np, tensorflow as tf
serve = tf.saved_model.load({str(export_dir / 'acgan' / '1')!r}).signatures["serving_default"]
labels = np.zeros([2, 24], np.float32); labels[0, [0, 9]] = 1; labels[1, 23] = 1
out = serve(noise=tf.random.normal([2, 100]), labels=tf.constant(labels))
print(sorted(serve.structured_input_signature[1]), out["images"].dtype.name, tuple(out["images"].shape))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("['labels', 'noise'] uint8 (2, 32, 32, 3)")


@pytest.mark.slow
def test_text_to_image_from_captions_to_a_string_input_saved_model(tmp_path):
    encoder_dir, embeddings_path = tmp_path / "encoder", tmp_path / "shapes.h5"
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    for module, *args in (
        ("data_prep.train_seq2seq", "--dataset=shapes", "--num_examples=16", "--steps=2", "--batch_size=8",
         f"--output_dir={encoder_dir}", "--embedding_dim=8", "--units=8"),
        ("data_prep.embed_captions", "--dataset=shapes", "--num_examples=16", "--encoder=seq2seq",
         f"--encoder_path={encoder_dir}", f"--output={embeddings_path}", "--noprogress"),
        ("t2i.bin.train", "--model=stackgan_stage1", "--image_size=32", "--batch_size=4", "--steps=2",
         "--num_examples=16", "--gf_dim=8", "--df_dim=8", "--ca_dim=8", "--num_samples=4",
         f"--embeddings={embeddings_path}", f"--log_dir={run_dir}", f"--export_dir={export_dir}",
         "--export_name=shapes_text"),
    ):
        out = run_binary(module, *args)
        assert out.returncode == 0, (module, out.stderr[-2000:])
    assert len((run_dir / "samples_captions.txt").read_text().splitlines()) == 2  # 4 samples: 2 rows of 2

    grid = tmp_path / "grids" / "grid.png"
    out = run_binary("t2i.bin.sample", f"--log_dir={run_dir}", f"--output={grid}", "--num_samples=4",
                     "--text=a red circle.", "--text=a blue square and a green triangle.")
    assert out.returncode == 0, out.stderr[-2000:]
    assert {p.name for p in grid.parent.iterdir()} == {"grid_00.png", "grid_01.png", "grid_captions.txt"}

    out = run_binary("t2i.bin.export", f"--log_dir={run_dir}", f"--export_dir={export_dir}", "--name=shapes_text",
                     "--print_request")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "to " + str(export_dir / "shapes_text" / "2") in out.stdout
    assert list(json.loads(out.stdout.strip().splitlines()[-1])["inputs"]) == ["text"]

    # A fresh interpreter without t2i: captions in, uint8 images out; the seeded signature is reproducible.
    code = f"""
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({str(export_dir / 'shapes_text' / '1')!r})
out = loaded.signatures["serving_default"](text=tf.constant(["a red circle.", "two purple squares."]))
seeded = loaded.signatures["seeded"]
a = seeded(text=tf.constant(["a red circle."]), seed=tf.constant(3, tf.int64))["images"].numpy()
b = seeded(text=tf.constant(["a red circle."]), seed=tf.constant(3, tf.int64))["images"].numpy()
c = seeded(text=tf.constant(["a red circle."]), seed=tf.constant(4, tf.int64))["images"].numpy()
print(out["images"].dtype.name, tuple(out["images"].shape), np.array_equal(a, b), np.array_equal(a, c))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("uint8 (2, 32, 32, 3) True False")


@pytest.mark.slow
def test_kill_9_at_any_moment_never_breaks_resume(tmp_path):
    """SIGKILL a run that checkpoints every step at a few moments; every time the next run resumes cleanly."""
    run_dir = tmp_path / "run"
    args = ["-m", "t2i.bin.train", "--image_size=32", "--batch_size=4", "--steps=400", "--num_examples=16",
            "--gf_dim=8", "--df_dim=8", "--max_filters=32", "--checkpoint_every=1", "--sample_every=3",
            "--log_every=1", "--keep_checkpoints=2", f"--log_dir={run_dir}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    rng = np.random.default_rng(0)
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
        try:
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                state = run_dir / "checkpoints" / "checkpoint"
                if state.exists() and "ckpt-" in state.read_text():
                    break
                time.sleep(0.05)
            time.sleep(float(rng.uniform(0.0, 1.5)))  # somewhere inside a step, a save or a sample write
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert (run_dir / "checkpoints" / "checkpoint").exists(), f"no checkpoint before kill {attempt}"

    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    saved_step = int(latest.rsplit("-", 1)[1])
    final = [a if not a.startswith("--steps=") else f"--steps={saved_step + 2}" for a in args[2:]]
    out = run_binary("t2i.bin.train", *final)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"at step {saved_step}." in out.stdout
    assert (run_dir / "checkpoints" / f"ckpt-{saved_step + 2}.index").exists()


@pytest.mark.slow
def test_bench_prints_train_and_sample_throughput_per_replica_count_and_precision():
    out = run_binary("t2i.bin.bench", "--image_size=32", "--batch_size=4", "--steps=1", "--sample_steps=1",
                     "--warmup=1", "--jit_compile=off", "--replicas=1,2", "--mixed_precision=mixed_float16")
    assert out.returncode == 0, out.stderr[-2000:]
    import re

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


@pytest.mark.parametrize("flag", ["--replicas=3", "--replicas=0", "--mixed_precision=float16"])
def test_bench_refuses_bad_replica_counts_and_policies(flag):
    out = run_binary("t2i.bin.bench", "--batch_size=4", flag)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("t2i-bench: error: --" + flag[2:].split("=")[0])
