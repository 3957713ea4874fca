"""Evaluator metrics against hand-computed values, caption parsing against the dataset, and t2i-eval end to end."""
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_binary, tiny_config
from t2i.data import shapes
from t2i.evaluation import classifier, evaluate
from t2i.evaluation.metrics import MetricError
from t2i.training import run
from test_classifier import trained_evaluator  # noqa: F401 (session fixture, trained once)

PNG = b"\x89PNG\r\n\x1a\n"


# ---- metric functions ------------------------------------------------------------------------------------------

SCORES = np.array([
    [0.9, 0.8, 0.1, 0.0],  # k=2, requested {0, 2}: top-2 = {0, 1} → 1 hit
    [0.2, 0.7, 0.6, 0.1],  # k=2, requested {1, 2}: top-2 = {1, 2} → 2 hits
    [0.5, 0.5, 0.1, 0.0],  # k=1, requested {1}: the tie 0.5 = 0.5 goes to label 0 (lower index) → 0 hits
    [0.1, 0.3, 0.2, 0.4],  # k=3, requested {0, 1, 2}: top-3 = {3, 1, 2} → 2 hits
])
REQUESTED = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0]], np.float32)


def test_iclevr_accuracy_is_top_k_hits_over_requested_objects():
    hits, counts = evaluate.top_k_hits(SCORES, REQUESTED)
    np.testing.assert_array_equal(hits, [1, 2, 0, 2])
    np.testing.assert_array_equal(counts, [2, 2, 1, 3])
    assert evaluate.iclevr_accuracy(SCORES, REQUESTED) == pytest.approx(5 / 8)
    # Only the order matters: logits of the same probabilities score the same (ties stay ties).
    clipped = np.clip(SCORES, 1e-3, 1 - 1e-3)
    assert evaluate.iclevr_accuracy(np.log(clipped / (1 - clipped)), REQUESTED) == pytest.approx(5 / 8)
    # The tie broken the other way: label 1 requested and listed first among the equal scores → a hit.
    assert evaluate.iclevr_accuracy([[0.5, 0.5]], [[1, 0]]) == 1.0
    assert evaluate.iclevr_accuracy([[0.5, 0.5]], [[0, 1]]) == 0.0


def test_iclevr_accuracy_refuses_mismatched_or_empty_requests():
    with pytest.raises(MetricError, match=r"Received: scores.shape=\(4, 4\), requested.shape=\(4, 3\)"):
        evaluate.iclevr_accuracy(SCORES, REQUESTED[:, :3])
    with pytest.raises(MetricError, match="No labels were requested"):
        evaluate.iclevr_accuracy(SCORES, np.zeros_like(REQUESTED))
    with pytest.raises(MetricError, match="non-finite"):
        evaluate.iclevr_accuracy(np.full((1, 4), np.nan), REQUESTED[:1])


def _labels(*names):
    vector = np.zeros(shapes.NUM_LABELS, np.float32)
    vector[[shapes.LABEL_NAMES.index(name) for name in names]] = 1
    return vector


@pytest.mark.parametrize("caption,names", [
    ("an orange square to the left of a white circle, plus a cyan triangle.",
     ["orange square", "white circle", "cyan triangle"]),
    ("there are three shapes here: a Blue Circle, a green triangle and a yellow square.",
     ["blue circle", "green triangle", "yellow square"]),
    ("two purple squares and a red circle.", ["purple square", "red circle"]),  # plural: one label
    ("a lone red triangle.", ["red triangle"]),
    ("only one shape is visible, a red.", []),
])
def test_caption_labels_find_every_colour_shape_mention(caption, names):
    np.testing.assert_array_equal(evaluate.caption_labels(caption), _labels(*names) if names else np.zeros(24))


def test_caption_labels_agree_with_the_dataset_for_200_examples_and_all_their_captions():
    for split, start in (("train", 0), ("test", 0), ("test", 5000)):
        for index in range(start, start + 200 // 3 + 1):
            example = shapes.render_example(index, image_size=32, split=split)
            for caption in example["captions"]:
                np.testing.assert_array_equal(evaluate.caption_labels(caption), example["label"], err_msg=caption)


def test_caption_attribute_accuracy_scores_the_labels_each_caption_asks_for():
    names = shapes.LABEL_NAMES
    scores = np.zeros((2, 24))
    scores[0, [names.index("red circle"), names.index("blue square")]] = [0.9, 0.8]
    scores[1, [names.index("green triangle"), names.index("white circle")]] = [0.9, 0.2]
    scores[1, names.index("red circle")] = 0.5
    captions = ["a red circle above a blue square.", "a green triangle and a white circle."]
    # Image 0: top-2 {red circle, blue square} → 2/2; image 1: top-2 {green triangle, red circle} → 1/2.
    assert evaluate.caption_attribute_accuracy(scores, captions) == pytest.approx(3 / 4)


@pytest.mark.parametrize("count,suffix", [(1000, "1k"), (10000, "10k"), (50000, "50k"), (500, "500"),
                                          (2500, "2500"), (20, "20")])
def test_metric_names_carry_the_sample_count(count, suffix):
    assert evaluate.count_suffix(count) == suffix
    assert evaluate.metric_name("fid", count) == "fid" + suffix


def test_images_rank_by_fraction_found_then_by_confidence_in_the_requested_labels():
    # Fractions found: [1/2, 1, 0, 2/3]; mean requested score breaks no tie here.
    np.testing.assert_array_equal(evaluate.rank_images(SCORES, REQUESTED), [1, 3, 0, 2])
    scores = np.array([[0.6, 0.1], [0.9, 0.1], [0.9, 0.1]])
    # All three find their label; 1 and 2 are equally sure (generation order kept), 0 less so.
    np.testing.assert_array_equal(evaluate.rank_images(scores, [[1, 0]] * 3), [1, 2, 0])
    # Unconditional: by the highest label score.
    np.testing.assert_array_equal(evaluate.rank_images([[0.2, 0.3], [0.9, 0.0], [0.1, 0.5]]), [1, 2, 0])


def test_best_record_is_highest_accuracy_then_lowest_fid_or_lowest_fid_alone():
    records = [{"accuracy20": 0.5, "fid20": 3.0}, {"accuracy20": 0.7, "fid20": 9.0},
               {"accuracy20": 0.7, "fid20": 4.0}, {"accuracy20": 0.2, "fid20": 1.0}]
    assert evaluate.best_record(records) is records[2]
    unconditional = [{"fid20": 3.0}, {"fid20": 2.5}, {"fid20": 2.5}]
    assert evaluate.best_record(unconditional) is unconditional[1]


# ---- scoring and t2i-eval ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_evaluator(tmp_path_factory):
    """Two training steps: every code path runs, quality is not the point."""
    path = tmp_path_factory.mktemp("evaluator") / "evaluator"
    classifier.train_evaluator(str(path), steps=2, num_examples=32, batch_size=8, num_test=16, verbose=False)
    return classifier.load_evaluator(path)


@pytest.fixture(scope="module")
def acgan_run(tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp("acgan") / "run", model="acgan", steps=4, checkpoint_every=2,
                         keep_checkpoints=3)
    run.train(config, verbose=False)
    return config.log_dir


def test_real_images_scored_as_generated_give_zero_fid_and_the_direct_accuracy(quick_evaluator, tmp_path):
    config = tiny_config(tmp_path / "run", model="acgan")
    cache = tmp_path / "cache"
    reference = evaluate.reference_statistics_for(config, quick_evaluator, 40, cache, batch_size=16)
    assert len(os.listdir(cache)) == 1 and reference.n == 40
    examples = [shapes.render_example(i, image_size=32, split="test") for i in range(40)]
    images = np.stack([e["image"] for e in examples]).astype(np.float32) / 127.5 - 1
    labels = np.stack([e["label"] for e in examples])
    np.testing.assert_array_equal(evaluate.evaluation_inputs(config, 40)[1], labels)  # the same held-out labels

    scored = evaluate.score(evaluate.Generated(images, labels, None), quick_evaluator, reference, batch_size=16)
    assert sorted(scored.metrics) == ["accuracy40", "fid40"]
    assert abs(scored.metrics["fid40"]) < 1e-4  # the reference is these very images (0 up to round-off)
    logits = quick_evaluator(images)["logits"]
    assert scored.metrics["accuracy40"] == pytest.approx(evaluate.iclevr_accuracy(logits, labels))
    np.testing.assert_allclose(scored.probabilities, 1 / (1 + np.exp(-logits.astype(np.float64))), rtol=1e-6)
    # The second time the statistics come from the cache: a stand-in with the same name and policy cannot compute.
    stand_in = types.SimpleNamespace(name=quick_evaluator.name, policy=quick_evaluator.policy)
    cached = evaluate.reference_statistics_for(config, stand_in, 40, cache, batch_size=16)
    np.testing.assert_array_equal(cached.mean, reference.mean)


def test_sheets_show_the_best_and_worst_images_first(tmp_path):
    # Four flat images of distinct greys; image 2 finds both its labels, image 0 none.
    greys = np.array([-1.0, -0.5, 0.5, 1.0], np.float32)
    images = np.ones((4, 8, 8, 3), np.float32) * greys[:, None, None, None]
    requested = np.zeros((4, 24), np.float32)
    requested[:, [0, 1]] = 1
    probabilities = np.full((4, 24), 0.1)
    probabilities[0, [2, 3]] = 0.9  # 0/2
    probabilities[1, [0, 3]] = 0.9  # 1/2
    probabilities[2, [0, 1]] = 0.9  # 2/2
    probabilities[3, [1, 3]] = [0.8, 0.9]  # 1/2, less sure of its requested label than image 1
    scored = evaluate.Scored({}, 4, probabilities, evaluate.rank_images(probabilities, requested),
                             evaluate.Generated(images, requested, None))
    paths = evaluate.write_sheets(scored, str(tmp_path), sheet_size=2)
    assert [os.path.basename(p) for p in paths] == ["top_samples.png", "bottom_samples.png", "samples_sheets.txt"]
    scale = 128 // 8
    for name, expected in (("top_samples.png", [2, 1]), ("bottom_samples.png", [0, 3])):
        grid = tf.io.decode_png(open(tmp_path / name, "rb").read()).numpy()
        assert grid.shape == (2 + 8 * scale + 2, 2 + 2 * (8 * scale + 2), 3)
        for column, index in enumerate(expected):
            left = 2 + column * (8 * scale + 2)
            expected_value = round((greys[index] + 1) * 127.5)
            assert np.all(grid[2:2 + 8 * scale, left:left + 8 * scale] == expected_value), (name, column)
    listing = (tmp_path / "samples_sheets.txt").read_text().splitlines()
    assert listing[1].startswith("    1. image 2: 2/2 found | labels: red circle, green circle")


def test_all_checkpoints_a_single_checkpoint_and_the_saved_model_agree(quick_evaluator, acgan_run, tmp_path):
    out = tmp_path / "sweep"
    report = evaluate.run_evaluation(quick_evaluator, log_dir=acgan_run, all_checkpoints=True, output_dir=str(out),
                                     num_images=20, batch_size=8, sheet_size=4, verbose=False)
    assert [r["step"] for r in report.records] == [2, 4]
    assert [os.path.basename(r["checkpoint"]) for r in report.records] == ["ckpt-2", "ckpt-4"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines == report.records
    for record in lines:
        assert set(record) >= {"step", "checkpoint", "accuracy20", "fid20", "num_images", "evaluator", "time"}
        assert 0.0 <= record["accuracy20"] <= 1.0 and record["fid20"] > 0 and record["num_images"] == 20
    assert report.best is evaluate.best_record(report.records)
    best = json.loads((out / "best_checkpoint.json").read_text())
    assert best["checkpoint"] == report.best["checkpoint"] and best["selected_by"] == "accuracy20"
    for name in ("score_curve.png", "top_samples.png", "bottom_samples.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert (out / "reference_stats").is_dir()

    # The same checkpoint alone, and the SavedModel exported from it, give the same images: the same numbers.
    single = evaluate.run_evaluation(quick_evaluator, log_dir=acgan_run, checkpoint=report.records[0]["checkpoint"],
                                     output_dir=str(out), num_images=20, batch_size=8, verbose=False)
    assert single.records[0]["accuracy20"] == report.records[0]["accuracy20"]
    assert single.records[0]["fid20"] == pytest.approx(report.records[0]["fid20"], rel=1e-6)
    generator, config, _ = run.restore_generator(acgan_run)
    export = run.export_generator(generator, config, str(tmp_path / "exports"), "acgan")
    served = evaluate.run_evaluation(quick_evaluator, saved_model=export, output_dir=str(tmp_path / "served"),
                                     num_images=20, batch_size=8, verbose=False)
    record = served.records[0]
    assert record["step"] is None and record["checkpoint"] == export
    assert record["accuracy20"] == report.records[1]["accuracy20"]
    assert record["fid20"] == pytest.approx(report.records[1]["fid20"], rel=1e-4)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3  # appended, never rewritten


def test_text_models_are_scored_on_held_out_captions_reproducibly(quick_evaluator, text_data, tmp_path):
    config = tiny_config(tmp_path / "run", model="stackgan_stage1", embeddings=text_data["embeddings"], ca_dim=8,
                         steps=2, num_examples=16)
    run.train(config, verbose=False)
    generator, config, _ = run.restore_generator(config.log_dir)
    first = evaluate.generate_from_generator(generator, config, 12, seed=3, batch_size=5)
    # A generator that was used in between: the CA noise restarts from the seed, so the same images come again.
    evaluate.generate_from_generator(generator, config, 12, seed=4, batch_size=12)
    second = evaluate.generate_from_generator(generator, config, 12, seed=3, batch_size=5)
    np.testing.assert_array_equal(first.images, second.images)
    assert first.captions == [shapes.example_captions(i, split="test")[i % 10] for i in range(12)]
    np.testing.assert_array_equal(first.requested, [shapes.render_example(i, image_size=32, split="test")["label"]
                                                    for i in range(12)])
    report = evaluate.run_evaluation(quick_evaluator, log_dir=config.log_dir, num_images=12, batch_size=5,
                                     verbose=False)
    assert [k for k in report.records[0] if k.endswith("12")] == ["caption_accuracy12", "fid12"]
    scored = evaluate.score(first, quick_evaluator, evaluate.reference_statistics_for(config, quick_evaluator, 12))
    assert report.records[0]["caption_accuracy12"] == pytest.approx(
        evaluate.caption_attribute_accuracy(scored.probabilities, first.captions), abs=1e-6)


def test_unconditional_models_get_fid_only(quick_evaluator, tmp_path):
    config = tiny_config(tmp_path / "run", model="dcgan", steps=2)
    run.train(config, verbose=False)
    report = evaluate.run_evaluation(quick_evaluator, log_dir=config.log_dir, num_images=10, sheet_size=2,
                                     verbose=False)
    assert [k for k in report.records[0] if k.endswith("10")] == ["fid10"]
    assert "sees: " in (tmp_path / "run" / "samples_sheets.txt").read_text()


def test_bad_requests_are_one_clear_error(quick_evaluator, acgan_run, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--evaluator"):
        evaluate.run_evaluation("", log_dir=acgan_run)
    with pytest.raises(evaluate.EvaluationError, match=r"exactly one of --log_dir .* or --saved_model"):
        evaluate.run_evaluation(quick_evaluator)
    with pytest.raises(evaluate.EvaluationError, match=r"--output_dir is required with --saved_model"):
        evaluate.run_evaluation(quick_evaluator, saved_model=str(tmp_path))
    with pytest.raises(evaluate.EvaluationError, match=r"Received: num_images=1"):
        evaluate.run_evaluation(quick_evaluator, log_dir=acgan_run, num_images=1)
    with pytest.raises(FileNotFoundError, match=r"--checkpoint: .*Received: checkpoint="):
        evaluate.run_evaluation(quick_evaluator, log_dir=acgan_run, checkpoint=str(tmp_path / "ckpt-9"))
    folder_run = tiny_config(tmp_path / "folder", dataset="folder", data_dir=str(tmp_path))
    with pytest.raises(evaluate.EvaluationError, match=r"Received: dataset=folder"):
        evaluate._check_evaluable(folder_run, "--log_dir")


def test_binary_without_an_evaluator_fails_in_one_line_naming_the_flag(tmp_path):
    for args in ([], [f"--evaluator={tmp_path / 'missing'}"]):
        out = run_binary("t2i.bin.evaluate", f"--log_dir={tmp_path}", *args)
        assert out.returncode == 1
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("t2i-eval: error: --evaluator"), out.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.slow
def test_t2i_eval_sweeps_every_checkpoint_of_an_acgan_run(trained_evaluator, acgan_run, tmp_path):  # noqa: F811
    out_dir = tmp_path / "eval"
    out = run_binary("t2i.bin.evaluate", f"--evaluator={trained_evaluator}", f"--log_dir={acgan_run}",
                     "--all_checkpoints", "--num_images=100", f"--output_dir={out_dir}", "--sheet_size=9")
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    evaluator_id = json.loads((trained_evaluator / "evaluator.json").read_text())["id"]
    for record in records:
        assert record["evaluator"] == f"shapes_evaluator({evaluator_id})" and record["num_images"] == 100
        # Four steps of training: nowhere near the held-out conditions yet, but a valid score.
        assert 0.0 <= record["accuracy100"] < 0.5 and record["fid100"] > 0
    best = json.loads((out_dir / "best_checkpoint.json").read_text())
    assert best == dict(evaluate.best_record(records), selected_by="accuracy100", rule="highest",
                        checkpoints_evaluated=2)
    assert f"Best checkpoint: {best['checkpoint']} (step {best['step']}" in out.stdout
    for name in ("score_curve.png", "top_samples.png", "bottom_samples.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG
    assert len((out_dir / "samples_sheets.txt").read_text().splitlines()) == 2 * (1 + 9)
