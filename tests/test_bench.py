"""The benchmark's interleaving: t2i and PyTorch timings alternate, the reported ratio is the median per-round ratio,
and the PyTorch child's protocol and failures (tested with stand-in servers, PyTorch not needed)."""
import io
import json

import pytest

from t2i.bench import compare, torch_reference


def test_interleaved_rounds_alternate_and_pair_each_t2i_timing_with_the_next_torch_timing():
    calls = []
    ours = iter([10.0, 20.0, 30.0])
    theirs = iter([5.0, 40.0, 10.0])

    def t2i():
        calls.append("t2i")
        return next(ours)

    def torch():
        calls.append("torch")
        return next(theirs)

    rounds = compare.interleaved_rounds(t2i, torch, 3, pause=0)
    assert calls == ["t2i", "torch"] * 3
    assert rounds == [(10.0, 5.0, 2.0), (20.0, 40.0, 0.5), (30.0, 10.0, 3.0)]


def test_serve_builds_both_timers_once_and_answers_each_request(monkeypatch):
    built = []

    def timer(kind):
        def build(**kwargs):
            built.append((kind, kwargs))
            return lambda steps: {"train": 100.0, "sample": 1000.0}[kind] * steps
        return build

    monkeypatch.setattr(torch_reference, "torch_train_timer", timer("train"))
    monkeypatch.setattr(torch_reference, "torch_sample_timer", timer("sample"))
    monkeypatch.setattr(torch_reference, "torch_version", lambda: "9.9")
    stdin = io.StringIO(json.dumps({"batch_size": 4, "image_size": 32}) + "\ntrain 2\n\nsample 3\ntrain 1\n")
    stdout = io.StringIO()
    torch_reference.serve(stdin, stdout)
    assert built == [("train", {"batch_size": 4, "image_size": 32}), ("sample", {"batch_size": 4, "image_size": 32})]
    replies = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert replies == [{"version": "9.9"}, {"images_per_second": 200.0}, {"images_per_second": 3000.0},
                       {"images_per_second": 100.0}]


def test_torch_reference_talks_to_its_child_and_reports_the_child_failure(monkeypatch):
    # A stand-in server: reads the settings, answers twice with batch_size * steps, then fails like a missing torch.
    server = (
        "import json, sys\n"
        "settings = json.loads(sys.stdin.readline())\n"
        "print(json.dumps({'version': 'fake-' + str(settings['image_size'])}), flush=True)\n"
        "for _ in range(2):\n"
        "    kind, steps = sys.stdin.readline().split()\n"
        "    print(json.dumps({'images_per_second': settings['batch_size'] * int(steps)}), flush=True)\n"
        "sys.exit(\"ImportError: t2i-bench --compare_torch needs PyTorch\")\n"
    )
    monkeypatch.setattr(compare.TorchReference, "server_code", server)
    reference = compare.TorchReference(image_size=32, batch_size=4, warmup=1)
    try:
        assert reference.version == "fake-32"
        assert reference.images_per_second("train", 3) == 12
        assert reference.images_per_second("sample", 5) == 20
        with pytest.raises(RuntimeError, match="needs PyTorch"):
            reference.images_per_second("train", 1)
    finally:
        reference.close()


def test_torch_reference_reports_a_child_that_dies_before_answering(monkeypatch):
    monkeypatch.setattr(compare.TorchReference, "server_code", "import sys; sys.exit(3)")
    with pytest.raises(RuntimeError, match="exited with 3"):
        compare.TorchReference(image_size=32, batch_size=4, warmup=1)
