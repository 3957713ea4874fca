"""PyTorch CPU reference of DCGAN, for `t2i-bench --compare_torch`.

The same network and update rule as the TensorFlow DCGAN trainer, written the way the PyTorch DCGAN example writes
it, so that the benchmark can say how t2i's throughput compares with a well-tuned PyTorch run on the same machine.

Network (DCGAN-64 by default; other sizes follow the same per-resolution channel table):
  G: z -> ConvT(noise_dim, C4, 4, 1, 0) BN ReLU -> [ConvT(4, 2, 1) BN ReLU]* -> ConvT(C_{n/2}, channels, 4, 2, 1) Tanh
  D: x -> Conv(channels, C_{n/2}, 4, 2, 1) LReLU(0.2) -> [Conv(4, 2, 1) BN LReLU(0.2)]* -> Conv(C4, 1, 4, 1, 0)
Convolutions carry no bias (as in the PyTorch example); BatchNorm eps 1e-5, momentum 0.1; conv weights N(0, 0.02),
BN weights N(1, 0.02), BN biases 0. D returns logits and the losses use `BCEWithLogitsLoss`.

Update rule per batch, as in the PyTorch example: Adam(2e-4, betas (0.5, 0.999)) for each network;
D step on BCE(D(real), 1) + BCE(D(G(z).detach()), 0), then G step on BCE(D(fake), 1) with the SAME fake (no second
generator forward) and the already updated D. Real and fake batches go through D separately (separate BN statistics).

Matching the TensorFlow side: Adam's epsilon is PyTorch's 1e-8 (Keras defaults to 1e-7), Keras BatchNormalization
needs momentum=0.9 and epsilon=1e-5 to match PyTorch's momentum 0.1 and eps 1e-5.

PyTorch is not a dependency of t2i: it is imported inside the functions, and `torch_available()` says whether it can
be. The defaults are the fastest configuration measured on a 2-core AVX2 CPU (see `torch_train_throughput`).
"""
import importlib.util
import time

_MISSING_TORCH = "t2i-bench --compare_torch needs PyTorch: pip install 't2i[bench]'"

_MIN_IMAGE_SIZE = 32
_MAX_IMAGE_SIZE = 256
_LEARNING_RATE = 2e-4
_ADAM_BETAS = (0.5, 0.999)
_ADAM_EPS = 1e-8  # PyTorch's default, added to sqrt(v_hat); Keras' Adam defaults to 1e-7.
_BN_EPS = 1e-5
_BN_MOMENTUM = 0.1  # PyTorch convention: weight of the new batch statistic (Keras momentum 0.9).
_LEAKY_SLOPE = 0.2
_INIT_STD = 0.02


def torch_available() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def _import_torch():
    try:
        import torch
    except ImportError as error:
        raise ImportError(_MISSING_TORCH) from error
    return torch


def torch_version() -> str:
    """The installed PyTorch version, e.g. '2.13.0+cpu'."""
    return _import_torch().__version__


def stage_channels(image_size=64, base_filters=64, max_filters=512):
    """Channels of the feature maps at resolutions 4, 8, ..., image_size / 2 (generator order).

    The map at resolution r carries `base_filters * image_size / (2 r)` channels, capped at `max_filters`:
    for 64 px, [512, 256, 128, 64]; for 128 px, [512, 512, 256, 128, 64]; for 32 px, [256, 128, 64].
    The discriminator uses the same table in reverse.
    """
    if (image_size & (image_size - 1)) or not _MIN_IMAGE_SIZE <= image_size <= _MAX_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be a power of two from {_MIN_IMAGE_SIZE} to {_MAX_IMAGE_SIZE}. "
            f"Received: image_size={image_size}"
        )
    resolutions = [4 * 2**i for i in range((image_size // 8).bit_length())]  # 4 .. image_size / 2
    return [min(max_filters, base_filters * image_size // (2 * r)) for r in resolutions]


def build_dcgan(image_size=64, channels=3, noise_dim=100, base_filters=64, max_filters=512, seed=0):
    """Returns (generator, discriminator) as `torch.nn.Sequential`, initialised as in the DCGAN paper.

    The generator maps noise [B, noise_dim, 1, 1] to images [B, channels, image_size, image_size] in [-1, 1];
    the discriminator maps images to logits [B, 1, 1, 1]. `seed` seeds a private generator, not torch's global one.
    """
    torch = _import_torch()
    nn = torch.nn
    widths = stage_channels(image_size, base_filters, max_filters)

    g_layers = [
        nn.ConvTranspose2d(noise_dim, widths[0], 4, 1, 0, bias=False),
        nn.BatchNorm2d(widths[0], eps=_BN_EPS, momentum=_BN_MOMENTUM),
        nn.ReLU(),
    ]
    for c_in, c_out in zip(widths, widths[1:]):
        g_layers += [
            nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c_out, eps=_BN_EPS, momentum=_BN_MOMENTUM),
            nn.ReLU(),
        ]
    g_layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]

    d_widths = widths[::-1]
    d_layers = [nn.Conv2d(channels, d_widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(_LEAKY_SLOPE)]
    for c_in, c_out in zip(d_widths, d_widths[1:]):
        d_layers += [
            nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c_out, eps=_BN_EPS, momentum=_BN_MOMENTUM),
            nn.LeakyReLU(_LEAKY_SLOPE),
        ]
    d_layers += [nn.Conv2d(d_widths[-1], 1, 4, 1, 0, bias=False)]

    generator, discriminator = nn.Sequential(*g_layers), nn.Sequential(*d_layers)
    rng = torch.Generator().manual_seed(seed)
    for module in [*generator.modules(), *discriminator.modules()]:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, _INIT_STD, generator=rng)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, _INIT_STD, generator=rng)
            nn.init.zeros_(module.bias)
    return generator, discriminator


class _TorchSettings:
    """Applies thread count and oneDNN switch for the duration of a benchmark, then restores torch's own."""

    def __init__(self, torch, threads, mkldnn):
        self._torch, self._threads, self._mkldnn = torch, threads, mkldnn

    def __enter__(self):
        torch = self._torch
        self._saved = torch.get_num_threads(), torch.backends.mkldnn.enabled
        if self._threads is not None:
            torch.set_num_threads(self._threads)
        torch.backends.mkldnn.enabled = self._mkldnn
        return self

    def __exit__(self, *exc):
        threads, mkldnn = self._saved
        self._torch.set_num_threads(threads)
        self._torch.backends.mkldnn.enabled = mkldnn
        return False


def _check_steps(warmup_steps, steps, batch_size):
    if steps < 1 or warmup_steps < 0 or batch_size < 1:
        raise ValueError(
            "steps and batch_size must be >= 1 and warmup_steps >= 0. "
            f"Received: steps={steps}, warmup_steps={warmup_steps}, batch_size={batch_size}"
        )


def torch_train_timer(
    batch_size=64,
    image_size=64,
    channels=3,
    noise_dim=100,
    warmup_steps=3,
    threads=None,
    channels_last=True,
    mkldnn=True,
    fused_adam=True,
    base_filters=64,
    max_filters=512,
    seed=0,
):
    """Builds the PyTorch DCGAN and its update rule, runs `warmup_steps` untimed steps and returns `measure(steps)`,
    which times `steps` further steps and returns images per second. Arguments as for `torch_train_throughput`;
    the thread and oneDNN settings hold only while a step runs."""
    torch = _import_torch()
    _check_steps(warmup_steps, 1, batch_size)
    with _TorchSettings(torch, threads, mkldnn):
        generator, discriminator = build_dcgan(image_size, channels, noise_dim, base_filters, max_filters, seed)
        rng = torch.Generator().manual_seed(seed + 1)
        real = torch.rand(batch_size, channels, image_size, image_size, generator=rng) * 2.0 - 1.0
        if channels_last:
            generator = generator.to(memory_format=torch.channels_last)
            discriminator = discriminator.to(memory_format=torch.channels_last)
            real = real.contiguous(memory_format=torch.channels_last)
        generator.train()
        discriminator.train()
        adam = dict(lr=_LEARNING_RATE, betas=_ADAM_BETAS, eps=_ADAM_EPS, fused=fused_adam)
        g_optimizer = torch.optim.Adam(generator.parameters(), **adam)
        d_optimizer = torch.optim.Adam(discriminator.parameters(), **adam)
        bce = torch.nn.BCEWithLogitsLoss()
        ones = torch.ones(batch_size)
        zeros = torch.zeros(batch_size)

        def train_step():
            noise = torch.randn(batch_size, noise_dim, 1, 1, generator=rng)
            fake = generator(noise)

            d_optimizer.zero_grad(set_to_none=True)
            d_loss = bce(discriminator(real).view(-1), ones) + bce(discriminator(fake.detach()).view(-1), zeros)
            d_loss.backward()
            d_optimizer.step()

            g_optimizer.zero_grad(set_to_none=True)
            g_loss = bce(discriminator(fake).view(-1), ones)
            g_loss.backward()
            g_optimizer.step()
            return d_loss, g_loss

        for _ in range(warmup_steps):
            train_step()

    return _measure(torch, threads, mkldnn, train_step, batch_size)


def _measure(torch, threads, mkldnn, step, batch_size):
    """`measure(steps)`: runs `step` `steps` times under the run's torch settings -> images per second."""
    def measure(steps):
        _check_steps(0, steps, batch_size)
        with _TorchSettings(torch, threads, mkldnn):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            return batch_size * steps / (time.perf_counter() - start)

    return measure


def torch_train_throughput(
    batch_size=64,
    image_size=64,
    channels=3,
    noise_dim=100,
    warmup_steps=3,
    steps=10,
    threads=None,
    channels_last=True,
    mkldnn=True,
    fused_adam=True,
    base_filters=64,
    max_filters=512,
    seed=0,
) -> float:
    """Steady-state DCGAN training throughput of PyTorch on CPU, in images per second.

    One step is one D update and one G update on a batch (see the module docstring). The real batch is a fixed
    random tensor in [-1, 1], so data loading is excluded; the `warmup_steps` are run first and not timed.

    The defaults are the fastest configuration measured for DCGAN-64, batch 64, on a 2-core AVX2 CPU with
    torch 2.13: oneDNN on (off is 3-5x slower), channels-last (a few % faster for training, ~20% for sampling),
    fused Adam (a few % faster; the same update).

    Args:
      threads: `torch.set_num_threads(threads)` for the run (restored afterwards); None keeps torch's default,
        one thread per core.
      channels_last: run the networks and data in NHWC memory format (`torch.channels_last`).
      mkldnn: `torch.backends.mkldnn.enabled` for the run (restored afterwards).
      fused_adam: use `torch.optim.Adam(fused=True)`, one kernel for the whole update instead of one per tensor.
      base_filters, max_filters: the channel table, see `stage_channels`.
      seed: seeds weights, the real batch and the noise through private generators.
    """
    _check_steps(warmup_steps, steps, batch_size)
    return torch_train_timer(batch_size, image_size, channels, noise_dim, warmup_steps, threads, channels_last,
                             mkldnn, fused_adam, base_filters, max_filters, seed)(steps)


def torch_sample_timer(
    batch_size=64,
    image_size=64,
    channels=3,
    noise_dim=100,
    warmup_steps=3,
    threads=None,
    channels_last=True,
    mkldnn=True,
    base_filters=64,
    max_filters=512,
    seed=0,
):
    """The sampling counterpart of `torch_train_timer`: returns `measure(steps)` -> images per second."""
    torch = _import_torch()
    _check_steps(warmup_steps, 1, batch_size)
    with _TorchSettings(torch, threads, mkldnn):
        generator, _ = build_dcgan(image_size, channels, noise_dim, base_filters, max_filters, seed)
        if channels_last:
            generator = generator.to(memory_format=torch.channels_last)
        generator.eval()
        rng = torch.Generator().manual_seed(seed + 1)

        @torch.inference_mode()
        def sample_step():
            return generator(torch.randn(batch_size, noise_dim, 1, 1, generator=rng))

        for _ in range(warmup_steps):
            sample_step()

    return _measure(torch, threads, mkldnn, sample_step, batch_size)


def torch_sample_throughput(
    batch_size=64,
    image_size=64,
    channels=3,
    noise_dim=100,
    warmup_steps=3,
    steps=20,
    threads=None,
    channels_last=True,
    mkldnn=True,
    base_filters=64,
    max_filters=512,
    seed=0,
) -> float:
    """Generator inference throughput of PyTorch on CPU (eval mode, `torch.inference_mode()`), in images per second.

    Each step draws fresh noise and runs the generator once; `warmup_steps` are not timed. Arguments as for
    `torch_train_throughput`; channels-last was ~20% faster than NCHW here.
    """
    _check_steps(warmup_steps, steps, batch_size)
    return torch_sample_timer(batch_size, image_size, channels, noise_dim, warmup_steps, threads, channels_last,
                              mkldnn, base_filters, max_filters, seed)(steps)


def serve(stdin=None, stdout=None):
    """Benchmark server for `t2i-bench --compare_torch`, run in a child process so that PyTorch's and TensorFlow's
    thread pools never compete (each waits on the pipe while the other is timed).

    Reads one JSON line of keyword arguments (`batch_size`, `image_size`, `warmup_steps`, ...), builds and warms
    both the train step and the sampler, writes `{"version": ...}`; then for every line `train STEPS` or
    `sample STEPS` writes `{"images_per_second": ...}`, until end of input.
    """
    import json
    import sys

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    kwargs = json.loads(stdin.readline())
    timers = {"train": torch_train_timer(**kwargs), "sample": torch_sample_timer(**kwargs)}
    print(json.dumps({"version": torch_version()}), file=stdout, flush=True)
    for line in stdin:
        if not line.strip():
            continue
        kind, steps = line.split()
        print(json.dumps({"images_per_second": timers[kind](int(steps))}), file=stdout, flush=True)
