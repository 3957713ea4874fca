"""What every t2i binary does before its main: quiet library INFO logs unless the user asks for them."""
from absl import flags, logging


def quiet_logs():
    """TensorFlow logs every checkpoint and export at INFO through absl; keep the terminal to t2i's own lines
    and warnings (such as skipped images) unless --verbosity was given."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
