"""Typed training configuration, named presets, and up-front validation.

A run is described entirely by a `TrainConfig`. Binaries build one from a preset plus the flags the user gave;
the library validates it before any work starts and writes it to `<log_dir>/config.json`, which is what
`t2i-sample`, `t2i-export` and resumed runs read back.
"""
import dataclasses
import json
import os
import time

from t2i.utils import files

MODELS = ("dcgan", "began", "cgan", "acgan", "wgan_gp", "srgan", "stackgan_stage1", "stackgan_stage2", "hdgan")
DATASETS = ("shapes", "folder", "iclevr", "cub", "oxford", "stackgan")
# Text-to-image models: conditioned on caption embeddings (precomputed to HDF5 by data_prep.embed_captions).
TEXT_MODELS = ("stackgan_stage1", "stackgan_stage2", "hdgan")
# Datasets with captions (shapes' are embedded; cub/oxford read Reed's text_c10; stackgan holds the embeddings).
TEXT_DATASETS = ("shapes", "cub", "oxford", "stackgan")
STACKGAN_VARIANTS = ("simple", "complex")
EMBEDDING_SAMPLING = ("one", "mean")
# Models whose networks always take the labels; wgan_gp and srgan take them with --conditional.
LABEL_MODELS = ("cgan", "acgan")
NORMALIZATIONS = ("auto", "batch", "layer", "instance", "none")
PERCEPTUAL_NETWORKS = ("auto", "vgg16", "vgg19", "resnet50", "keras")
LOSSES = ("minimax", "non_saturating", "hinge", "wasserstein", "least_squares")
LR_SCHEDULES = ("constant", "step", "linear")
STRATEGIES = ("default", "mirrored", "multi_worker")
# "" trains in float32; the mixed policies compute in 16 bits and keep float32 variables (and float32 outputs).
MIXED_PRECISION = ("", "mixed_float16", "mixed_bfloat16", "auto")

# Fields that fix the networks' shapes or the data they were trained on: a resumed run must not change them.
ARCHITECTURE_FIELDS = (
    "model", "dataset", "image_size", "channels", "noise_dim", "gf_dim", "df_dim", "max_filters", "upsampling",
    "num_labels", "conditional", "condition_dim", "normalization", "sr_scale", "residual_blocks",
    "embedding_dim", "use_text", "ca_dim", "stackgan_variant", "hdgan_scales", "hdgan_shared_trunk",
    "text_aux_weight", "projection", "conditional_bn", "standardize_embeddings", "stackgan_base_size", "ca_hidden",
)


class ConfigError(ValueError):
    """A bad flag or config value; the message names the flag."""


@dataclasses.dataclass
class TrainConfig:
    # What to train.
    model: str = "dcgan"
    # Data.
    dataset: str = "shapes"
    data_dir: str = ""
    num_examples: int = 10000
    dataset_seed: int = 0
    image_size: int = 64
    channels: int = 3
    class_subfolders: bool = False
    on_bad_image: str = "skip"
    # Networks.
    noise_dim: int = 100
    gf_dim: int = 64
    df_dim: int = 64
    max_filters: int = 512
    upsampling: str = "transposed"
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    # "auto": BatchNorm, except LayerNorm for the wgan_gp critic.
    normalization: str = "auto"
    # Conditions (multi-hot labels): cgan/acgan always; wgan_gp/srgan with --conditional. num_labels 0 = the
    # dataset's label count (written back into the run's config.json).
    conditional: bool = False
    num_labels: int = 0
    condition_dim: int = 256
    aux_weight: float = 1.0
    aux_fake_weight: float = 1.0
    projection: bool = False  # cgan/acgan/stackgan_stage1: projection discriminator (Miyato & Koyama 2018)
    conditional_bn: bool = False  # cgan/acgan/stackgan_stage1 generators: BN scale/offset from the condition
    # BEGAN.
    began_gamma: float = 0.5
    began_lambda_k: float = 0.001
    # SRGAN-style super-resolution.
    sr_scale: int = 4
    residual_blocks: int = 16
    pixel_weight: float = 1.0
    adversarial_weight: float = 1e-3
    perceptual_weight: float = 0.0
    tv_weight: float = 2e-8
    perceptual_weights: str = ""
    perceptual_layer: str = ""
    perceptual_network: str = "auto"
    # Text-to-image (stackgan_stage1, stackgan_stage2, hdgan).
    text_dir: str = ""  # Reed captions (text_c10) for cub/oxford; default <data_dir>/text_c10.
    embeddings: str = ""  # HDF5 caption embeddings from data_prep.embed_captions (not needed for --dataset=stackgan).
    embedding_dim: int = 0  # 0 = the embeddings file's dimension (written back into config.json).
    embedding_sampling: str = "one"  # per image per step: one caption's embedding, or the mean of --num_mean.
    num_mean: int = 4
    use_text: bool = True  # False: the unconditional StackGAN (noise only; no CA, no matching-aware loss).
    ca_dim: int = 128
    ca_hidden: int = 0  # StackGAN generators: a hidden layer in front of CA (0: none, as in the paper).
    # Standardise caption embeddings per dimension (training-set mean and std, kept in the networks' weights).
    standardize_embeddings: bool = False
    kl_weight: float = 2.0
    stackgan_variant: str = "simple"
    # Side of Stage-I's smallest feature map (generator's first, discriminator's last); 0: image_size/16 (paper).
    stackgan_base_size: int = 0
    matching_aware: bool = True  # GAN-CLS
    interpolation_weight: float = 0.0  # GAN-INT
    interpolation_beta: float = 0.5
    # TAC-GAN auxiliary classifier on the Stage-I discriminator (0 = off): needs per-image labels (shapes).
    text_aux_weight: float = 0.0
    stage1_checkpoint: str = ""  # stackgan_stage2: the Stage-I run directory.
    fine_tune_stage1: bool = False  # stackgan_stage2: train Stage-I too, at --stage1_lr_scale x lr_g.
    stage1_lr_scale: float = 0.1
    hdgan_scales: str = ""  # comma-separated side-output sizes; default image_size/4, /2, image_size.
    hdgan_shared_trunk: bool = False
    text_encoder: str = ""  # encoder kind and path for --text sampling; default: the embeddings file's record.
    text_encoder_path: str = ""
    sample_text_file: str = ""  # captions for progress grids, one per line; default: held-out captions.
    # Replay buffer of earlier fakes (0 = off).
    replay_size: int = 0
    replay_fraction: float = 0.5
    # Objective and update rule.
    loss: str = "non_saturating"
    label_smoothing: float = 0.0
    gp_weight: float = 0.0
    mode_seeking_weight: float = 0.0  # MSGAN's λ: fakes of one condition pushed apart in proportion to their z.
    # DiffAugment policy for every image D sees ("translation", "color,translation,cutout"; "" = off).
    diff_augment: str = ""
    translation_ratio: float = 0.125  # the translation policy's largest shift, as a fraction of the image side.
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the generator; grids and exports use it.
    n_critic: int = 1
    n_gen: int = 1
    batch_size: int = 64
    steps: int = 0
    epochs: int = 0
    # > 0: seconds of training (from the first step to the last) this invocation may take; the run then ends at the
    # last of --steps that fits, its learning-rate schedule fitted to that step (`t2i.training.callbacks.TimeBudget`).
    time_budget: float = 0.0
    # > 0: a Unix time (e.g. `date +%s` at the start of a multi-command job) the budget counts from instead of the
    # start of training, so the time earlier commands took comes off it.
    time_budget_start: float = 0.0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_schedule: str = "constant"
    lr_decay_steps: int = 0
    lr_decay_rate: float = 0.5
    lr_min: float = 0.0
    lr_hold_fraction: float = 0.0
    # Run bookkeeping.
    log_dir: str = ""
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 200
    num_samples: int = 64
    log_every: int = 10
    seed: int = 0
    jit_compile: bool = False
    # TensorFlow's CPU thread pools (0: TensorFlow's default, one thread per core in each).
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    strategy: str = "default"
    mixed_precision: str = ""
    export_dir: str = ""
    export_name: str = ""

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown config keys {unknown}; known keys are the t2i-train flags.")
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def uses_labels(self):
        """Whether the networks take the dataset's label vectors."""
        return self.model in LABEL_MODELS or (self.conditional and self.model in ("wgan_gp", "srgan"))

    @property
    def uses_text(self):
        """Whether the networks take caption embeddings."""
        return self.model in TEXT_MODELS and self.use_text

    @property
    def stage1_size(self):
        """stackgan_stage2: the Stage-I image size (Stage-II outputs 4x it)."""
        return self.image_size // 4

    @property
    def scales(self):
        """hdgan: the side-output sizes, ascending."""
        if self.hdgan_scales:
            return tuple(sorted(int(s) for s in self.hdgan_scales.split(",") if s.strip()))
        return (self.image_size // 4, self.image_size // 2, self.image_size)

    @property
    def resolved_normalization(self):
        if self.normalization != "auto":
            return self.normalization
        return "layer" if self.model == "wgan_gp" else "batch"


# Named presets: the hyperparameters of the original experiments. Every field stays overridable by its flag.
PRESETS = {
    # Radford et al. 2016: Adam 2e-4, β1 0.5, batch 128, z 100, N(0, 0.02) init, 64×64; 25 epochs as in the
    # reference implementations.
    "dcgan": dict(model="dcgan", image_size=64, batch_size=128, noise_dim=100, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                  epochs=25),
    # The README's main job: DCGAN on the embedded shapes at 32×32, sized to finish in minutes on 2 CPU cores.
    # Nearest-upsampling removed the transposed convs' checkerboard; one-sided smoothing 0.1 calmed the
    # D-dominant oscillation (both chosen by looking at the grids of 1200-1600-step runs).
    "dcgan_shapes": dict(
        model="dcgan", dataset="shapes", image_size=32, batch_size=64, steps=1600, gf_dim=32, df_dim=32,
        upsampling="nearest", label_smoothing=0.1,
        lr_g=2e-4, lr_d=2e-4, beta1=0.5, sample_every=200, checkpoint_every=200,
    ),
    # Berthelot et al. 2017, the face/city runs of the reference implementation (BEGAN-tensorflow):
    # γ 0.5, λ_k 0.001, Adam 8e-5 (β1 0.5) halved every 100k steps but not below 2e-5, batch 16, z 64, h 128.
    "began": dict(
        model="began", image_size=64, batch_size=16, noise_dim=64, gf_dim=128, df_dim=128, began_gamma=0.5,
        began_lambda_k=0.001, lr_g=8e-5, lr_d=8e-5, beta1=0.5, beta2=0.999, lr_schedule="step",
        lr_decay_steps=100000, lr_decay_rate=0.5, lr_min=2e-5, steps=500000,
    ),
    # BEGAN on the embedded shapes, sized for 2 CPU cores. Mostly-flat images are easy to reconstruct, so with
    # γ 0.5 / λ_k 0.001 k never left 0 in 1500 steps and G collapsed to one image; γ 0.7 and λ_k 0.01 let the
    # controller act within the run (measured: right background, samples starting to differ).
    "began_shapes": dict(
        model="began", dataset="shapes", image_size=32, batch_size=16, noise_dim=64, gf_dim=16, df_dim=16,
        began_gamma=0.7, began_lambda_k=0.01, lr_g=1e-4, lr_d=1e-4, beta1=0.5, lr_schedule="step",
        lr_decay_steps=1000, lr_decay_rate=0.5, lr_min=2e-5, steps=1500, sample_every=250, checkpoint_every=250,
    ),
    # The iCLEVR cGAN: lr_d 4e-4, lr_g 1e-4, batch 64, z 100, condition 256, 64×64, 4 D and 4 G updates per batch,
    # one-sided label smoothing.
    "cgan": dict(
        model="cgan", image_size=64, batch_size=64, noise_dim=100, condition_dim=256, lr_d=4e-4, lr_g=1e-4,
        beta1=0.5, n_critic=4, n_gen=4, label_smoothing=0.1,
    ),
    # The same recipe with the auxiliary multi-label classifier (Odena et al. 2017).
    "acgan": dict(
        model="acgan", image_size=64, batch_size=64, noise_dim=100, condition_dim=256, lr_d=4e-4, lr_g=1e-4,
        beta1=0.5, n_critic=4, n_gen=4, label_smoothing=0.1, aux_weight=1.0,
    ),
    # AC-GAN on the embedded shapes, sized for 2 CPU cores (measured with the shapes evaluator, accuracy1k; README:
    # Evaluation): a projection discriminator whose classifier learns from real images only (--aux_fake_weight=0;
    # the fake-image term let G and D agree a private code); per-example LayerNorm in the discriminator instead of
    # BatchNorm (BatchNorm normalised the fake batch with its own statistics, so the classifier learnt on real
    # batches read fakes as "no label": the generator's auxiliary loss never left the label prior, 0.29), which lets
    # the 24-label BCE be weighed 8 (16 collapsed every row to one image); Adam 4e-4 for both networks; samples,
    # exports and evaluation from an EMA of the generator (0.999). 4000 steps: 0.45 with BatchNorm and weight 4,
    # 0.75 with this recipe; 10000 steps: 0.88 for the raw generator, 0.92 for its EMA. Conditional BatchNorm in the
    # generator (the labels set every BN's scale and offset, not only z's neighbour): 0.927 against 0.895 at 12000
    # steps (0.913 against 0.880 at 8000); a quarter of the learning rate after 12000 steps gained nothing.
    "acgan_shapes": dict(
        model="acgan", dataset="shapes", image_size=32, batch_size=64, steps=12000, noise_dim=100,
        condition_dim=256, gf_dim=32, df_dim=32, upsampling="nearest", projection=True, conditional_bn=True,
        normalization="layer",
        lr_d=4e-4, lr_g=4e-4, beta1=0.5, n_critic=1, n_gen=1, label_smoothing=0.1, aux_weight=8.0,
        aux_fake_weight=0.0, ema_decay=0.999, sample_every=1000, checkpoint_every=1000, keep_checkpoints=12,
    ),
    # Gulrajani et al. 2017: λ 10, n_critic 5, Adam(1e-4, β 0.5/0.9), LayerNorm critic, batch 64.
    "wgan_gp": dict(
        model="wgan_gp", image_size=64, batch_size=64, noise_dim=128, loss="wasserstein", gp_weight=10.0,
        n_critic=5, lr_g=1e-4, lr_d=1e-4, beta1=0.5, beta2=0.9, normalization="layer", steps=200000,
    ),
    # Ledig et al. 2017 (SRResNet + adversarial): ×4, 16 residual blocks, 64 filters, batch 16, Adam 1e-4 (β1 0.9),
    # adversarial weight 1e-3, TV 2e-8. Their VGG loss needs a local file: add --perceptual_weights=vgg19.h5
    # --perceptual_weight=6e-3 (the paper's 1/12.75² rescaling of VGG features).
    "srgan": dict(
        model="srgan", image_size=128, batch_size=16, sr_scale=4, residual_blocks=16, gf_dim=64, df_dim=64,
        lr_g=1e-4, lr_d=1e-4, beta1=0.9, adversarial_weight=1e-3, tv_weight=2e-8, pixel_weight=1.0,
        perceptual_weight=0.0, perceptual_network="vgg19",
    ),
    # StackGAN Stage-I on CUB birds / Oxford flowers (Zhang et al. 2017 and the official code's cfg files): Adam 2e-4
    # (β1 0.5), batch 64, z 100, CA 128 with KL weight 2, gf 128 / df 64, 64×64, 600 epochs with the learning rate
    # halved every 50 epochs (lr_decay_steps counts optimizer steps: 50 epochs of CUB's 8,855 train images at batch
    # 64 = 6,900); embeddings: the mean of 4 of the 10 captions per image.
    "stackgan_stage1": dict(
        model="stackgan_stage1", dataset="cub", image_size=64, batch_size=64, noise_dim=100, ca_dim=128,
        kl_weight=2.0, gf_dim=128, df_dim=64, stackgan_variant="complex", lr_g=2e-4, lr_d=2e-4, beta1=0.5,
        loss="non_saturating", lr_schedule="step", lr_decay_steps=6900, lr_decay_rate=0.5, epochs=600,
        embedding_sampling="mean", num_mean=4,
    ),
    # Stage-II: 256×256 from a frozen Stage-I, lr halved every 100 epochs.
    "stackgan_stage2": dict(
        model="stackgan_stage2", dataset="cub", image_size=256, batch_size=64, noise_dim=100, ca_dim=128,
        kl_weight=2.0, gf_dim=128, df_dim=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5, loss="non_saturating",
        lr_schedule="step", lr_decay_steps=13800, lr_decay_rate=0.5, epochs=600, embedding_sampling="mean",
        num_mean=4,
    ),
    # The flowers report's table (Oxford-102): Adam 2e-3 (β1 0.5) decayed every 50 epochs, KL weight 2, z 100,
    # N(0, 0.02) init (the networks' default); 7,034 trainval images at batch 64 = 110 steps per epoch.
    "stackgan_flowers": dict(
        model="stackgan_stage1", dataset="oxford", image_size=64, batch_size=64, noise_dim=100, ca_dim=128,
        kl_weight=2.0, gf_dim=128, df_dim=64, stackgan_variant="complex", lr_g=2e-3, lr_d=2e-3, beta1=0.5,
        loss="non_saturating", lr_schedule="step", lr_decay_steps=5500, lr_decay_rate=0.5, epochs=600,
        embedding_sampling="mean", num_mean=4,
    ),
    # HDGAN (Zhang et al. 2018): side outputs 64/128/256, Adam 2e-4 (β1 0.5), batch 16, CA 128.
    "hdgan": dict(
        model="hdgan", dataset="cub", image_size=256, hdgan_scales="64,128,256", batch_size=16, noise_dim=100,
        ca_dim=128, kl_weight=4.0, gf_dim=64, df_dim=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5, loss="non_saturating",
        epochs=500,
    ),
    # The README's main job: StackGAN Stage-I from captions of the embedded shapes, sized for 2 CPU cores, on
    # embeddings of a jointly trained seq2seq encoder (train_seq2seq --joint_weight=1). Measured with the shapes
    # evaluator (caption_accuracy500; README: Evaluation). Text path: without --standardize_embeddings CA's unit noise
    # drowned the encoder's small vectors (accuracy at chance); a hidden layer in CA (--ca_hidden) reads what is not
    # linear in them (0.67 against 0.64 at 4000 steps). Networks: the paper's 4x4 bottom at 32x32
    # (--stackgan_base_size=4; S/16 leaves 2x2) with nearest-upsampling and conditional BatchNorm from the CA code
    # (0.64 at 4000 steps against 0.52 for the former simple 2x2 networks), gf 16 (as good per step as gf 32 at 0.65x
    # its cost), df 32 with LayerNorm (BatchNorm normalised fakes with their own statistics and blinded the TAC-GAN
    # head on them). Losses: the TAC-GAN head (the captioned image's 24 labels, learnt on real images) with weight
    # 16; without GAN-CLS's mismatched pairs and with one-sided smoothing 0.1 instead the accuracy per step was the
    # same (0.65 against 0.67 at 4000 steps) at 0.84x the step time, FID 169 against 184. KL 0.2 (2 kept the code
    # near N(0, I)), generator EMA 0.999. Adam 8e-4 (beta1 0.5) for both networks: 0.73 at 3000 steps against 0.61
    # at 4e-4 (8e-4 for D alone 0.70; 1.6e-3 collapsed at 3000 steps; beta1 0 gave 0.65), decayed linearly to 0
    # over the run (3000 steps: 0.61 against 0.64 constant, within the +-0.05 between runs, FID 141 against 207
    # and a clean background in the grid). 10000 images: on 5000 the TAC head memorised them (its loss 0.007 at
    # 3000 steps, accuracy 0.52). Batch 32: per second of training more updates beat bigger batches (after about
    # 5 minutes on 2 cores: batch 64 0.55 at 2500 steps, 32 0.72 at 5000, 16 0.74 at 8000; batch 16 is the most
    # exposed to per-step overhead on slower machines). Upsampling as NearestUpsampleConv2D (nearest_fused: the same
    # function as nearest, 0.84x the step with the closed-form LayerNorm). One thread per op (--intra_op_threads=1,
    # independent ops side by side on the 2 cores): 0.85x the step of TensorFlow's default pools here (DCGAN-64's
    # large convolutions run slower that way: 0.96x PyTorch against 1.14x, so it is this preset's, not a default).
    # 6500 steps keep the README's main job within 10 minutes on a 2-core Xeon (the same time as 6000 steps with the
    # default pools). The rate is held for the first half, then decays linearly to 0 (--lr_hold_fraction=0.5, as
    # pix2pix): 0.757 at 6500 steps (FID 83) against 0.717 (97) decaying from the first step, same encoder and seed;
    # more late learning rate helped in every run tried (a 7500-step decay: 0.753 at 6500; --lr_min=4e-4: 0.734 at
    # 6000 against 0.702). 20000 images instead of 10000 (their captions embed in 11 s more): D memorises less and
    # 0.782 at 6500 (FID 84) against 0.757, every row of the grid in its named colours (30000: 0.777). Longer runs
    # pass --steps (17000 steps of the former preset, decay from the start: 0.80 from 7000 on, 0.89 at 17000, in
    # 17.5 minutes). On more cores pass --intra_op_threads=0. bfloat16 where the CPU computes it natively
    # (--mixed_precision=auto; AMX on that Xeon): 0.80x the float32 step (28.6 against 36.0 ms, bare step, one
    # thread per op) at the same accuracy per step (0.772 against 0.782 at 6500 steps): 0.840 (FID 61) after 8000
    # steps (a 9000-step run: 0.842 at 8000, 0.851 at 9000). The preset takes 7500, which cost less time than the
    # 6500 float32 steps did: the main job measured 9 min 12 s to 9 min 54 s from a fresh clone with 8000 while the
    # machine ran 1.1-1.4x slower than its best, too close to 10 minutes (7500: 0.825, FID 70, the job 7 min 20 s).
    # On CPUs without bfloat16 (float32) the steps take about 1.2x as long. DiffAugment's translation
    # (--diff_augment=translation: every image D sees, real or fake, shifted by up to 1/8 of its side, zero-filled)
    # keeps D from memorising the 20000 images: 0.873 (FID 32) at 7500 steps against 0.825 (70), same encoder and
    # seed (shifts up to 1/4: 0.857, FID 51; colour and cutout are left out: they change the colours a caption names
    # and can hide a labelled object). With D augmented, the TAC weight 32 that had cost accuracy before pays:
    # 0.908 (FID 37) against 0.873 with 16. Tried beside it: the hinge loss 0.766 (without augmentation), Adam 1.2e-3
    # collapsed at 2500 steps, a seq2seq encoder of 750 steps instead of 1500 0.759 (text quality still counts).
    "stackgan_shapes": dict(
        model="stackgan_stage1", dataset="shapes", image_size=32, batch_size=32, steps=7500, num_examples=20000,
        noise_dim=100, ca_dim=128, ca_hidden=256, kl_weight=0.2, gf_dim=16, df_dim=32, stackgan_variant="simple",
        upsampling="nearest_fused", stackgan_base_size=4, conditional_bn=True, normalization="layer",
        standardize_embeddings=True, text_aux_weight=32.0, matching_aware=False, label_smoothing=0.1,
        ema_decay=0.999, lr_g=8e-4, lr_d=8e-4, beta1=0.5, lr_schedule="linear", lr_hold_fraction=0.5,
        loss="non_saturating", sample_every=500, checkpoint_every=500, keep_checkpoints=20, intra_op_threads=1,
        mixed_precision="auto", diff_augment="translation",
    ),
}


def from_preset(name, **overrides):
    """A config from a named preset with `overrides` applied on top."""
    if name and name not in PRESETS:
        raise ConfigError(f"Unknown --preset; expected one of {sorted(PRESETS)}. Received: preset={name!r}")
    values = dict(PRESETS.get(name, {}))
    # --steps and --epochs are two ways to say one thing: giving one replaces the preset's other.
    for given, other in (("steps", "epochs"), ("epochs", "steps")):
        if overrides.get(given) and not overrides.get(other):
            values.pop(other, None)
    values.update(overrides)
    return TrainConfig.from_dict(values)


def _power_of_two(value):
    return isinstance(value, int) and value > 0 and value & (value - 1) == 0


def validate(config):
    """Raises ConfigError naming the first bad flag; runs before any data is read or graph built."""
    def fail(flag, message):
        raise ConfigError(f"--{flag}: {message}. Received: {flag}={getattr(config, flag)!r}")

    def choice(flag, allowed):
        if getattr(config, flag) not in allowed:
            fail(flag, f"must be one of {', '.join(allowed)}")

    choice("model", MODELS)
    choice("dataset", DATASETS)
    choice("loss", LOSSES)
    choice("lr_schedule", LR_SCHEDULES)
    choice("strategy", STRATEGIES)
    if config.mixed_precision not in MIXED_PRECISION:
        fail("mixed_precision", "must be mixed_float16, mixed_bfloat16, auto or empty (float32)")
    if (config.mixed_precision == "mixed_float16" and config.model == "stackgan_stage2"
            and config.fine_tune_stage1):
        # Stage-I's own optimizer would have to unscale gradients by the generator optimizer's loss scale.
        fail("mixed_precision", "mixed_float16 (loss scaling) is not supported with --fine_tune_stage1; use "
                                "mixed_bfloat16")
    choice("upsampling", ("transposed", "nearest", "nearest_fused"))
    choice("on_bad_image", ("skip", "fail"))
    choice("normalization", NORMALIZATIONS)
    if config.normalization != "auto" and config.model in ("began", "srgan", "hdgan"):
        fail("normalization", f"is fixed by --model={config.model}'s networks; leave it at auto")
    choice("perceptual_network", PERCEPTUAL_NETWORKS)
    if not config.log_dir:
        fail("log_dir", "is required (the run directory for checkpoints, samples and logs)")
    smallest = {"stackgan_stage1": 16, "stackgan_stage2": 64, "hdgan": 16}.get(config.model, 32)
    if not _power_of_two(config.image_size) or not smallest <= config.image_size <= 256:
        fail("image_size", f"must be a power of two in [{smallest}, 256]")
    if config.dataset == "shapes" and config.image_size < 32:
        fail("image_size", "the shapes dataset renders 32 to 256 pixels")
    if config.dataset == "shapes" and config.channels != 3:
        fail("channels", "the shapes dataset is RGB; use 3")
    choice("embedding_sampling", EMBEDDING_SAMPLING)
    choice("stackgan_variant", STACKGAN_VARIANTS)
    if config.stackgan_base_size:
        if config.model != "stackgan_stage1":
            fail("stackgan_base_size", "shapes the stackgan_stage1 networks only (a Stage-II run takes its Stage-I "
                                       "run's); leave it at 0")
        if (config.stackgan_base_size < 0 or config.image_size % config.stackgan_base_size
                or config.image_size // config.stackgan_base_size not in (4, 8, 16)):
            fail("stackgan_base_size", "must be image_size/16, /8 or /4 (0: image_size/16)")
    if config.dataset in ("cub", "oxford", "stackgan") and not config.uses_text:
        fail("dataset", f"{config.dataset} is read for text-to-image models ({', '.join(TEXT_MODELS)}); "
                        "train other models on its images with --dataset=folder")
    if config.uses_text:
        if config.dataset not in TEXT_DATASETS:
            fail("dataset", f"--model={config.model} needs captions: one of {', '.join(TEXT_DATASETS)}")
        if config.dataset != "stackgan":
            if not config.embeddings:
                fail("embeddings", "is required for text-to-image models: an HDF5 file written by "
                                   "`python -m data_prep.embed_captions`")
            if not os.path.isfile(config.embeddings):
                fail("embeddings", "no such file")
        if config.embedding_dim < 0:
            fail("embedding_dim", "must be >= 0 (0: the embeddings file's dimension)")
        if config.num_mean < 1:
            fail("num_mean", "must be >= 1")
        if config.interpolation_weight < 0:
            fail("interpolation_weight", "must be >= 0 (0 disables GAN-INT)")
        if not 0 <= config.interpolation_beta <= 1:
            fail("interpolation_beta", "must be in [0, 1]")
        if config.matching_aware and config.label_smoothing:
            fail("label_smoothing", "is not part of the matching-aware (GAN-CLS) loss; use --nomatching_aware")
    if config.model in TEXT_MODELS:
        if config.ca_dim <= 0:
            fail("ca_dim", "must be > 0")
        if config.ca_hidden < 0:
            fail("ca_hidden", "must be >= 0 (0: no hidden layer)")
        if config.ca_hidden and (config.model == "hdgan" or not config.use_text):
            fail("ca_hidden", "applies to the text-conditioned StackGAN generators (stackgan_stage1, stackgan_stage2)")
        if config.kl_weight < 0:
            fail("kl_weight", "must be >= 0")
        if config.text_aux_weight < 0:
            fail("text_aux_weight", "must be >= 0 (0: no auxiliary classifier)")
        if config.text_aux_weight > 0 and (config.model != "stackgan_stage1" or config.dataset != "shapes"
                                           or not config.use_text):
            fail("text_aux_weight", "needs --model=stackgan_stage1 with text on --dataset=shapes (the only text "
                 "dataset with per-image labels)")
        if config.standardize_embeddings and (config.model == "hdgan" or not config.use_text):
            fail("standardize_embeddings", "applies to the text-conditioned StackGAN models (stackgan_stage1, "
                                           "stackgan_stage2)")
        if config.sample_text_file and not os.path.isfile(config.sample_text_file):
            fail("sample_text_file", "no such file")
    if config.model == "stackgan_stage2":
        if not config.stage1_checkpoint:
            fail("stage1_checkpoint", "is required with --model=stackgan_stage2: the Stage-I run directory")
        if not os.path.isdir(config.stage1_checkpoint):
            fail("stage1_checkpoint", "no such directory")
        if not config.stage1_lr_scale > 0:
            fail("stage1_lr_scale", "must be > 0")
    if config.model == "hdgan":
        try:
            scales = config.scales
        except ValueError:
            fail("hdgan_scales", "must be comma-separated integers such as 16,32,64")
        if not scales or any(not _power_of_two(s) or s < 16 for s in scales):
            fail("hdgan_scales", "must be powers of two >= 16")
        if scales[-1] != config.image_size:
            fail("hdgan_scales", f"the largest scale must equal --image_size={config.image_size}")
        if config.gp_weight > 0:
            fail("gp_weight", "HDGAN trains with its pair and patch losses; the gradient penalty is not supported")
    if config.dataset in ("folder", "iclevr", "cub", "oxford", "stackgan"):
        if not config.data_dir:
            fail("data_dir", f"is required with --dataset={config.dataset}")
        if not os.path.isdir(config.data_dir):
            fail("data_dir", "no such directory")
    for flag in ("batch_size", "channels", "noise_dim", "gf_dim", "df_dim", "max_filters", "n_critic", "n_gen",
                 "checkpoint_every", "sample_every", "num_samples", "log_every", "keep_checkpoints",
                 "num_examples"):
        if getattr(config, flag) <= 0:
            fail(flag, "must be > 0")
    if config.steps < 0:
        fail("steps", "must be >= 0")
    for flag in ("intra_op_threads", "inter_op_threads"):
        if getattr(config, flag) < 0:
            fail(flag, "must be >= 0 (0: TensorFlow's default)")
    if config.epochs < 0:
        fail("epochs", "must be >= 0")
    if not config.time_budget >= 0 or config.time_budget == float("inf"):
        fail("time_budget", "must be a finite number of seconds >= 0 (0: no limit)")
    if config.time_budget_start:
        if not config.time_budget > 0:
            fail("time_budget_start", "counts --time_budget from that moment: give --time_budget too")
        if not 0 < config.time_budget_start <= time.time() + 60:
            fail("time_budget_start", "must be a Unix time in seconds, not in the future (e.g. S=$(date +%s) at "
                                      "the start of the job)")
    if config.time_budget and config.strategy == "multi_worker":
        # Each worker would time itself and could pick another last step: the collectives would then hang.
        fail("time_budget", "is measured per process; with --strategy=multi_worker give --steps alone")
    if (config.steps > 0) == (config.epochs > 0):
        fail("steps", "give exactly one of --steps or --epochs (> 0)")
    for flag in ("lr_g", "lr_d"):
        if not getattr(config, flag) > 0:
            fail(flag, "must be > 0")
    for flag in ("beta1", "beta2"):
        if not 0 <= getattr(config, flag) < 1:
            fail(flag, "must be in [0, 1)")
    if not 0 <= config.label_smoothing < 1:
        fail("label_smoothing", "must be in [0, 1)")
    if config.label_smoothing and config.loss not in ("minimax", "non_saturating"):
        fail("label_smoothing", "applies to --loss=minimax or non_saturating only")
    if config.gp_weight < 0:
        fail("gp_weight", "must be >= 0")
    if not 0 <= config.ema_decay < 1:
        fail("ema_decay", "must be in [0, 1) (0: no generator EMA)")
    if config.mode_seeking_weight < 0:
        fail("mode_seeking_weight", "must be >= 0 (0: off)")
    if config.mode_seeking_weight and config.model in ("began", "srgan"):
        fail("mode_seeking_weight", f"is a term of the adversarial trainers' generator loss, not --model={config.model}'s")
    if config.mode_seeking_weight and config.batch_size < 2:
        fail("mode_seeking_weight", "pairs the fakes of a batch: needs --batch_size >= 2")
    if config.diff_augment:
        from t2i.training import augment

        try:
            augment.parse_policy(config.diff_augment)
        except ValueError:
            fail("diff_augment", f"must be a comma-separated subset of {', '.join(augment.POLICIES)}")
        if config.model in ("began", "srgan", "hdgan"):
            fail("diff_augment", f"augments the single image D of the adversarial trainers, not --model={config.model}")
    if not 0 < config.translation_ratio < 1:
        fail("translation_ratio", "must be in (0, 1)")
    if config.lr_schedule == "step" and config.lr_decay_steps <= 0:
        fail("lr_decay_steps", "must be > 0 with --lr_schedule=step")
    if not 0 <= config.lr_hold_fraction < 1:
        fail("lr_hold_fraction", "must be in [0, 1)")
    if not 0 < config.lr_decay_rate <= 1:
        fail("lr_decay_rate", "must be in (0, 1]")
    if config.conditional and config.model not in ("wgan_gp", "srgan"):
        fail("conditional", f"applies to --model=wgan_gp or srgan ({', '.join(LABEL_MODELS)} always condition; "
                            f"the others never do)")
    if config.uses_labels and config.dataset == "folder" and not config.class_subfolders:
        fail("class_subfolders", f"--model={config.model} needs labels; with --dataset=folder the labels are "
                                 "the class sub-folders")
    if config.num_labels < 0:
        fail("num_labels", "must be >= 0 (0: the dataset's label count)")
    if config.condition_dim <= 0:
        fail("condition_dim", "must be > 0")
    if config.aux_weight < 0:
        fail("aux_weight", "must be >= 0")
    if config.aux_fake_weight < 0:
        fail("aux_fake_weight", "must be >= 0")
    if config.conditional_bn and not (config.model in LABEL_MODELS
                                      or (config.conditional and config.model == "wgan_gp")
                                      or (config.model == "stackgan_stage1" and config.uses_text)):
        fail("conditional_bn", "is for label-conditioned generators (cgan, acgan, --conditional wgan_gp) and the "
                               "text-conditioned stackgan_stage1 generator")
    if config.projection and not (config.model in LABEL_MODELS
                                  or (config.model == "stackgan_stage1" and config.uses_text)):
        fail("projection", f"is for the label-conditioned discriminators of {LABEL_MODELS} and the text-conditioned "
                           "stackgan_stage1 discriminator")
    if config.model == "began":
        if not 0 < config.began_gamma <= 1:
            fail("began_gamma", "must be in (0, 1]")
        if config.began_lambda_k < 0:
            fail("began_lambda_k", "must be >= 0")
    if config.model == "srgan":
        if not _power_of_two(config.sr_scale) or config.sr_scale < 2:
            fail("sr_scale", "must be a power of two >= 2")
        if config.image_size // config.sr_scale < 4:
            fail("sr_scale", f"leaves low-resolution inputs below 4x4 at --image_size={config.image_size}")
        if config.residual_blocks < 0:
            fail("residual_blocks", "must be >= 0")
        if config.jit_compile:
            fail("jit_compile", "XLA cannot compile the antialiased resize that makes SRGAN's low-resolution inputs")
        for flag in ("pixel_weight", "adversarial_weight", "perceptual_weight", "tv_weight"):
            if getattr(config, flag) < 0:
                fail(flag, "must be >= 0")
        if config.perceptual_weight > 0 and not config.perceptual_weights:
            fail("perceptual_weights", "is required with --perceptual_weight > 0 (a local Keras VGG16/VGG19/"
                                       "ResNet50 weights file or a saved Keras model; nothing is downloaded)")
    if config.perceptual_weights and not os.path.isfile(config.perceptual_weights):
        fail("perceptual_weights", "no such file")
    if config.replay_size < 0:
        fail("replay_size", "must be >= 0 (0 disables the replay buffer)")
    if config.replay_size and not 0 < config.replay_fraction < 1:
        fail("replay_fraction", "must be in (0, 1)")
    if config.replay_size and config.model in ("began", "srgan", "hdgan"):
        fail("replay_size", f"the replay buffer works with the adversarial trainers, not --model={config.model}")
    if config.export_dir and not config.export_name:
        fail("export_name", "is required with --export_dir")
    return config


def save(config, log_dir):
    files.atomic_write_text(os.path.join(log_dir, "config.json"), config.to_json())


def load(log_dir):
    """The config a run was trained with; a missing or broken file is one clear error naming it."""
    path = os.path.join(log_dir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"--log_dir: {path} not found; is {log_dir!r} a t2i run directory?")
    try:
        with open(path, encoding="utf-8") as f:
            return TrainConfig.from_dict(json.load(f))
    except (json.JSONDecodeError, TypeError) as error:
        raise ConfigError(f"{path}: not a valid t2i config ({error})") from None


def check_resume_compatible(saved, requested):
    """A resumed run may change how long or how fast it trains, never what it trains."""
    for field in ARCHITECTURE_FIELDS:
        old, new = getattr(saved, field), getattr(requested, field)
        if old != new:
            raise ConfigError(
                f"--{field}: log_dir {requested.log_dir!r} holds a run trained with {field}={old!r}; "
                f"use that value or a new --log_dir. Received: {field}={new!r}"
            )
    if (saved.lr_schedule == "constant") != (requested.lr_schedule == "constant"):
        # A constant rate is an optimizer variable in the checkpoint, a schedule is not: the optimizer states differ.
        raise ConfigError(
            f"--lr_schedule: log_dir {requested.log_dir!r} holds a run trained with lr_schedule="
            f"{saved.lr_schedule!r}, whose optimizer state a {requested.lr_schedule!r} schedule cannot restore; "
            f"change the rate with --lr_g/--lr_d, or use a new --log_dir. Received: lr_schedule="
            f"{requested.lr_schedule!r}"
        )
    if (saved.ema_decay > 0) != (requested.ema_decay > 0):
        kept = "with" if saved.ema_decay > 0 else "without"
        raise ConfigError(
            f"--ema_decay: log_dir {requested.log_dir!r} holds a run trained {kept} a generator EMA "
            f"(ema_decay={saved.ema_decay!r}); keep it {'on' if saved.ema_decay > 0 else 'off'} or use a new "
            f"--log_dir. Received: ema_decay={requested.ema_decay!r}"
        )
