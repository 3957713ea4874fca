"""t2i against the PyTorch reference in one run: the reference in a persistent child process, and timing rounds that
alternate between the two so that drift of the machine's speed moves both figures of a round alike."""
import json
import os
import subprocess
import sys
import tempfile
import time


class TorchReference:
    """The PyTorch reference in a persistent child process (`torch_reference.serve`), so that its rounds can be
    interleaved with t2i's: drift of the machine's speed then moves both figures of a round alike."""

    server_code = "from t2i.bench import torch_reference; torch_reference.serve()"

    def __init__(self, image_size, batch_size, warmup):
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._child = subprocess.Popen(
            [sys.executable, "-c", self.server_code],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        try:
            self.version = self._ask(json.dumps(dict(image_size=image_size, batch_size=batch_size,
                                                     warmup_steps=warmup)))["version"]
        except BaseException:
            self.close()
            raise

    def _ask(self, line):
        try:
            self._child.stdin.write(line + "\n")
            self._child.stdin.flush()
            reply = self._child.stdout.readline()
        except (BrokenPipeError, OSError):
            reply = ""
        if not reply:
            self._child.wait()
            self._stderr.seek(0)
            lines = self._stderr.read().strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"the PyTorch child exited with {self._child.returncode}")
        return json.loads(reply)

    def images_per_second(self, kind, steps):
        return self._ask(f"{kind} {int(steps)}")["images_per_second"]

    def close(self):
        if self._child.poll() is None:
            try:
                self._child.stdin.close()
            except OSError:
                pass
            self._child.wait(timeout=60)
        if not self._stderr.closed:
            self._stderr.close()


def interleaved_rounds(t2i_measure, torch_measure, rounds, pause=0.5):
    """Alternates t2i and PyTorch timings `rounds` times; returns (t2i img/s, torch img/s, ratio) per round.
    The pause lets the idle framework's spinning threads go to sleep before the other is timed."""
    results = []
    for _ in range(rounds):
        ours = t2i_measure()
        time.sleep(pause)
        theirs = torch_measure()
        time.sleep(pause)
        results.append((ours, theirs, ours / theirs))
    return results
