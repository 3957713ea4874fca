"""Networks only, one module per family. Importing this package registers them (and their custom layers) as Keras
serialisables, so `keras.models.load_model("generator.keras")` works after `import t2i` (see t2i/registration.py)."""
from t2i.models.acgan import ConditionalDiscriminator, ConditionalGenerator  # noqa: F401
from t2i.models.began import BEGANDiscriminator, BEGANGenerator  # noqa: F401
from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: F401
from t2i.models.hdgan import HDGANDiscriminator, HDGANDiscriminators, HDGANGenerator  # noqa: F401
from t2i.models.srgan import SRGANDiscriminator, SRGANGenerator  # noqa: F401
from t2i.models.stackgan import (StackGANStage1Discriminator, StackGANStage1Generator,  # noqa: F401
                                 StackGANStage2Discriminator, StackGANStage2Generator)
from t2i.models.wgan_gp import WGANGPCritic  # noqa: F401
