"""t2i: GAN image synthesis from noise, labels and text on TensorFlow 2 / Keras 3."""
import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries the messages users need.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels are off by default in this TensorFlow build on CPUs without AVX-512; on the 2-core AVX2 machines
# t2i is tuned for they made the DCGAN-64 train step 1.5x and sampling 2.2x faster (t2i-bench; see README).
# Takes effect only when t2i is imported before TensorFlow, as the binaries do; set it to 0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

# t2i's Keras objects (networks, layers, encoders, trainers) become loadable by `keras.models.load_model` as soon as
# Keras and TensorFlow are imported, without `import t2i` importing them itself (see t2i/registration.py).
from t2i import registration as _registration  # noqa: E402

_registration.install()
