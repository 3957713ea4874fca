"""Makes every t2i Keras object loadable after a bare `import t2i`, without importing TensorFlow at that moment.

`keras.models.load_model("generator.keras")` in another project finds t2i's networks, layers, encoders and trainers
through Keras's registry ("t2i>DCGANGenerator", ...), which the modules defining them fill when they are imported.
`import t2i` itself stays free of TensorFlow (the binaries report a bad flag on one line before TensorFlow's start-up
messages), so the registering modules are imported:

- at once, when Keras and TensorFlow are already imported;
- otherwise as soon as both have finished importing, whichever the program imports first (each imports the other):
  a `sys.meta_path` finder wraps the two modules' loaders and runs `register_all()` after the outer import completes
  — or, when a t2i module is what imported them (`from t2i.data import shapes` imports TensorFlow half-way), once
  that t2i module has finished too: the finder also wraps t2i's own modules, since registering imports modules
  that read the half-initialised one.

`register_all()` can also be called directly; it is idempotent.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Every module with `@keras.saving.register_keras_serializable(package="t2i")` objects.
MODULES = (
    "t2i.layers.conditioning",
    "t2i.layers.normalization",
    "t2i.layers.pixel_shuffle",
    "t2i.layers.resize_conv",
    "t2i.losses.perceptual",
    "t2i.models.dcgan",
    "t2i.models.acgan",
    "t2i.models.began",
    "t2i.models.wgan_gp",
    "t2i.models.srgan",
    "t2i.models.stackgan",
    "t2i.models.hdgan",
    "t2i.text.seq2seq",
    "t2i.text.skip_thought",
    "t2i.text.hub_encoder",
    "t2i.evaluation.classifier",
    "t2i.training.schedules",
    "t2i.training.optimizers",
    "t2i.training.gan",
    "t2i.training.conditional",
    "t2i.training.began",
    "t2i.training.srgan",
    "t2i.training.text_gan",
)
_WATCHED = ("keras", "tensorflow")
_registered = False


def register_all():
    """Imports every module that registers t2i objects with Keras."""
    global _registered
    if _registered:
        return
    _registered = True
    for name in MODULES:
        importlib.import_module(name)


def _imported(name):
    """True once `name` is in sys.modules and its import has finished."""
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


def _t2i_complete():
    """True when no t2i module is half-way through its import."""
    return all(_imported(name) for name in list(sys.modules) if name == "t2i" or name.startswith("t2i."))


def _register_when_ready():
    if all(_imported(name) for name in _WATCHED) and _t2i_complete():
        _remove_finder()
        try:
            register_all()
        except Exception as error:  # never break the user's `import keras`; load_model will name the missing class
            warnings.warn(f"t2i could not register its Keras objects: {error!r}; call t2i.registration.register_all() "
                          "to see the full error", stacklevel=2)


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then registers if Keras and TensorFlow are both complete."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        module.__spec__._initializing = False  # this import is complete; importlib resets the flag only on return
        _register_when_ready()

    def __getattr__(self, name):  # get_resource_reader, is_package, ... from the real loader
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _WATCHED and not fullname.startswith("t2i."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def _remove_finder():
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _Finder)]


def install():
    """Registers now if Keras and TensorFlow are imported, else once they are (called by `import t2i`)."""
    if all(_imported(name) for name in _WATCHED):
        register_all()
        return
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
