"""t2i: GAN image synthesis from noise, labels and text on TensorFlow 2 / Keras 3."""
import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries the messages users need.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
