"""The progress bar: one line per `every` steps in a log file, with a step count and an ETA."""
import io

import tensorflow as tf

from t2i.training.callbacks import ProgressBar


class _Trainer:
    def __init__(self):
        self.global_step = tf.Variable(0, dtype=tf.int64)


def test_log_file_gets_one_line_every_n_steps_and_the_last():
    trainer, stream = _Trainer(), io.StringIO()
    bar = ProgressBar(trainer, total_steps=10, every=4, stream=stream)
    bar.on_train_begin()
    for _ in range(10):
        trainer.global_step.assign_add(1)
        bar.on_train_batch_end(0, {"d_loss": 0.5, "g_loss": 2.0})
    bar.on_train_end()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["4/10", "8/10", "10/10"]
    assert "\r" not in stream.getvalue()
    assert "d_loss 0.5000 g_loss 2.0000" in lines[-1] and "ETA 0:00" in lines[-1]
    assert lines[-1].split("[")[1].startswith("=" * 24)
