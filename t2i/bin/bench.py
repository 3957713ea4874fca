"""Benchmarks DCGAN training and sampling throughput (images/s), optionally against PyTorch in the same run.

    t2i-bench                                  # DCGAN-64, batch 64: XLA off and on, 1 and 2 replicas, mixed precision
    t2i-bench --replicas=1,2,4 --mixed_precision=mixed_float16
    t2i-bench --compare_torch                  # also the same network and update rule in PyTorch (pip install torch)

Prints one line per figure, e.g. `train dcgan64 batch=64 jit_compile=off: 97.1 img/s (659 ms/step)` for one device
in float32, then the same global batch under MirroredStrategy and under each mixed-precision policy, each compared
with it: `train dcgan64 batch=64 replicas=2 precision=float32 jit_compile=off: 90.3 img/s (709 ms/step, 45.2 img/s
per replica on 2 logical CPU devices; 0.93x one device)`. Replicas are GPUs when there are enough, else logical CPU
devices sharing the CPU's cores (so on a CPU they show the strategy's overhead, not a speed-up); each replica count
runs in a fresh process.
The PyTorch reference runs in a persistent child process so the two frameworks' thread pools never compete, and
its timings are interleaved with t2i's (`--rounds`, each round one t2i and one PyTorch timing of the same step count):
the ratio printed is the median of the per-round ratios, so a machine whose speed drifts by tens of percent within
minutes (seen on shared 2-core VMs) moves both sides of each ratio alike.
"""
import os
import statistics
import sys

from absl import app, flags

from t2i.bench.compare import TorchReference, interleaved_rounds
from t2i.bin import common

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 64, "Image side (power of two, 32-256).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("warmup", 3, "Untimed calls first (tracing, compilation, allocator warm-up).")
flags.DEFINE_integer("steps", 10, "Timed train steps.")
flags.DEFINE_integer("sample_steps", 20, "Timed generator calls.")
flags.DEFINE_enum("jit_compile", "both", ["both", "on", "off"], "Measure the step with XLA on, off or both.")
flags.DEFINE_bool("compare_torch", False, "Also measure the PyTorch reference and print the ratios.")
flags.DEFINE_integer("rounds", 5, "With --compare_torch: interleaved t2i/PyTorch timing rounds (each --steps or "
                     "--sample_steps calls); the ratio printed is the median of the per-round ratios.")
flags.DEFINE_list("replicas", ["1", "2"],
                  "Replica counts to measure under MirroredStrategy (GPUs, else logical CPU devices); empty: none.")
flags.DEFINE_list("mixed_precision", ["mixed_bfloat16", "mixed_float16"],
                  "Mixed-precision policies to measure on one device; empty: none.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    common.quiet_logs()
    if FLAGS.batch_size <= 0 or FLAGS.steps <= 0 or FLAGS.sample_steps <= 0 or FLAGS.warmup < 1 or FLAGS.rounds < 1:
        print("t2i-bench: error: --batch_size, --steps, --sample_steps and --rounds must be > 0 and --warmup >= 1",
              file=sys.stderr)
        return 1
    try:
        replica_counts = [int(count) for count in FLAGS.replicas]
    except ValueError:
        replica_counts = [0]
    if any(count < 1 or FLAGS.batch_size % count for count in replica_counts):
        print(f"t2i-bench: error: --replicas must be positive integers dividing --batch_size={FLAGS.batch_size}. "
              f"Received: replicas={','.join(FLAGS.replicas)}", file=sys.stderr)
        return 1
    from t2i.configs.config import MIXED_PRECISION

    bad = [policy for policy in FLAGS.mixed_precision if policy not in MIXED_PRECISION or policy in ("", "auto")]
    if bad:
        print(f"t2i-bench: error: --mixed_precision takes mixed_float16 and/or mixed_bfloat16. Received: "
              f"mixed_precision={','.join(FLAGS.mixed_precision)}", file=sys.stderr)
        return 1
    import keras
    import tensorflow as tf

    from t2i.bench import throughput
    from t2i.models import dcgan  # noqa: F401  (registers the networks)

    config = throughput.dcgan_config(FLAGS.image_size, FLAGS.batch_size)
    name = f"dcgan{FLAGS.image_size}"
    print(f"# TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"devices: {', '.join(d.device_type for d in tf.config.list_physical_devices())}", flush=True)
    jit_modes = {"both": [False, True], "on": [True], "off": [False]}[FLAGS.jit_compile]
    train, train_timers = {}, {}
    for jit in jit_modes:
        train_timers[jit] = throughput.train_timer(config, jit, FLAGS.warmup)
        figure = train_timers[jit](FLAGS.steps)
        train[jit] = figure
        print(f"train {name} batch={FLAGS.batch_size} jit_compile={'on' if jit else 'off'}: "
              f"{figure.images_per_second:.1f} img/s ({figure.seconds_per_call * 1000:.0f} ms/step)", flush=True)
    best_jit = max(train, key=lambda jit: train[jit].images_per_second)
    sample_timer = throughput.sample_timer(config, best_jit, FLAGS.warmup)
    sample = sample_timer(FLAGS.sample_steps)
    print(f"sample {name} batch={FLAGS.batch_size} jit_compile={'on' if best_jit else 'off'}: "
          f"{sample.images_per_second:.1f} img/s ({sample.seconds_per_call * 1000:.0f} ms/batch)", flush=True)
    if len(train) == 2:
        print(f"# jit_compile on/off train ratio: "
              f"{train[True].images_per_second / train[False].images_per_second:.2f}x", flush=True)
    # Scaling figures are compared with the single-device float32 step at the same XLA setting.
    scale_jit = False if False in train else True
    single = train[scale_jit]
    head = f"train {name} batch={FLAGS.batch_size}"
    jit_text = f"jit_compile={'on' if scale_jit else 'off'}"
    for count in replica_counts:
        try:
            figure = throughput.train_throughput_in_subprocess(config, count, scale_jit, FLAGS.warmup, FLAGS.steps)
        except (RuntimeError, ValueError) as error:
            print(f"t2i-bench: error: the {count}-replica run failed: {error}", file=sys.stderr)
            return 1
        print(f"{head} replicas={count} precision=float32 {jit_text}: {figure.images_per_second:.1f} img/s "
              f"({figure.seconds_per_call * 1000:.0f} ms/step, {figure.images_per_second / count:.1f} img/s per "
              f"replica on {figure.devices}; {figure.images_per_second / single.images_per_second:.2f}x one device)",
              flush=True)
    for policy in FLAGS.mixed_precision:
        figure = throughput.train_throughput(config.replace(mixed_precision=policy), scale_jit, FLAGS.warmup,
                                             FLAGS.steps)
        ratio = figure.images_per_second / single.images_per_second
        print(f"{head} replicas=1 precision={policy} {jit_text}: {figure.images_per_second:.1f} img/s "
              f"({figure.seconds_per_call * 1000:.0f} ms/step; {ratio:.2f}x float32)", flush=True)
    if FLAGS.compare_torch:
        try:
            torch = TorchReference(FLAGS.image_size, FLAGS.batch_size, FLAGS.warmup)
        except (RuntimeError, ValueError, KeyError) as error:
            print(f"t2i-bench: error: PyTorch reference failed: {error}", file=sys.stderr)
            return 1
        try:
            for kind, measure, steps in [("train", train_timers[best_jit], FLAGS.steps),
                                         ("sample", sample_timer, FLAGS.sample_steps)]:
                rounds = interleaved_rounds(lambda: measure(steps).images_per_second,
                                            lambda: torch.images_per_second(kind, steps), FLAGS.rounds)
                ours, theirs, ratios = (statistics.median(column) for column in zip(*rounds))
                unit = "steps" if kind == "train" else "batches"
                print(f"torch {kind} {name} batch={FLAGS.batch_size}: {theirs:.1f} img/s (PyTorch {torch.version}; "
                      f"median of {FLAGS.rounds} rounds of {steps} {unit}; t2i {ours:.1f} img/s in the same rounds)",
                      flush=True)
                print(f"ratio {kind} t2i/torch: {ratios:.2f}x (median; rounds: "
                      f"{' '.join(f'{ratio:.2f}x' for *_, ratio in rounds)})", flush=True)
        except (RuntimeError, ValueError, KeyError) as error:
            print(f"t2i-bench: error: PyTorch reference failed: {error}", file=sys.stderr)
            return 1
        finally:
            torch.close()
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
