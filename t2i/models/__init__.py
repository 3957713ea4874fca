"""Networks only, one module per family. Importing this package registers them as Keras serialisables, so
`keras.models.load_model("generator.keras")` works after `import t2i.models`."""
from t2i.models.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: F401
