"""Trains a GAN.

    t2i-train --model=dcgan --dataset=shapes --image_size=32 --batch_size=8 --steps=4 --log_dir=runs/demo
    t2i-train --preset=dcgan_shapes --log_dir=runs/shapes --export_dir=saved_models --export_name=shapes_dcgan
    t2i-train --preset=dcgan_shapes --log_dir=runs/shapes --strategy=mirrored --mixed_precision=mixed_float16
    TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}' \
        t2i-train --preset=dcgan_shapes --log_dir=/shared/runs/shapes --strategy=multi_worker  # "index": 1 on host2

Re-running with the same --log_dir resumes at the last checkpoint. Start from a named --preset (the original
experiments' hyperparameters) and override any field with its flag; --flagfile=FILE reads flags from a file and
--dry_run prints the resolved config without training.
"""
import dataclasses
import sys

from absl import app, flags

from t2i.bin import common

from t2i import configs

FLAGS = flags.FLAGS
_DEFAULTS = configs.TrainConfig()

flags.DEFINE_string("preset", "", f"Named preset to start from: {', '.join(sorted(configs.PRESETS))}.")
flags.DEFINE_bool("dry_run", False, "Print the resolved config and exit.")

flags.DEFINE_string("model", _DEFAULTS.model, f"Model family: {', '.join(configs.MODELS)}.")
flags.DEFINE_string("dataset", _DEFAULTS.dataset,
                    "shapes (embedded, procedurally generated, with captions), folder (images, optional class "
                    "sub-folders), iclevr (objects.json / train.json / test.json + images/), and for text models "
                    "cub (CUB-200-2011 + Reed's text_c10), oxford (Oxford-102 + text_c10) or stackgan (StackGAN's "
                    "released pickles).")
flags.DEFINE_string("data_dir", _DEFAULTS.data_dir,
                    "Folder of --dataset=folder (searched recursively), iclevr, cub, oxford or stackgan.")
flags.DEFINE_integer("num_examples", _DEFAULTS.num_examples, "Images in the shapes dataset.")
flags.DEFINE_integer("dataset_seed", _DEFAULTS.dataset_seed, "Seed of the shapes dataset / folder augmentation.")
flags.DEFINE_integer("image_size", _DEFAULTS.image_size, "Image side, a power of two in [32, 256] (text models: from 16; stackgan_stage2: 4x Stage-I).")
flags.DEFINE_integer("channels", _DEFAULTS.channels, "Image channels (1 grey, 3 RGB, N for .npy heatmaps).")
flags.DEFINE_bool("class_subfolders", _DEFAULTS.class_subfolders, "Folder dataset: first-level folders are classes.")
flags.DEFINE_enum("on_bad_image", _DEFAULTS.on_bad_image, ["skip", "fail"],
                  "Folder dataset: skip unreadable images (reported by name, with a count) or fail on the first.")

flags.DEFINE_integer("noise_dim", _DEFAULTS.noise_dim, "Size of z.")
flags.DEFINE_integer("gf_dim", _DEFAULTS.gf_dim, "Generator filters at the finest hidden resolution.")
flags.DEFINE_integer("df_dim", _DEFAULTS.df_dim, "Discriminator filters at the finest resolution.")
flags.DEFINE_integer("max_filters", _DEFAULTS.max_filters, "Cap on filters per stage.")
flags.DEFINE_string("upsampling", _DEFAULTS.upsampling,
                    "transposed (stride-2 deconv), nearest (resize + conv) or nearest_fused (the same function in "
                    "one layer, 2.25x fewer multiply-adds): DCGAN-family generators "
                    "and StackGAN's simple Stage-I generator (the complex one is nearest by definition).")
flags.DEFINE_float("bn_epsilon", _DEFAULTS.bn_epsilon, "BatchNorm epsilon.")
flags.DEFINE_float("bn_momentum", _DEFAULTS.bn_momentum, "BatchNorm momentum (Keras convention: 0.9).")
flags.DEFINE_string("normalization", _DEFAULTS.normalization,
                    "Discriminator normalisation: auto (batch; layer for wgan_gp), batch, layer, instance or none.")
flags.DEFINE_bool("conditional", _DEFAULTS.conditional,
                  "wgan_gp / srgan: feed the dataset's labels to both networks (cgan and acgan always do).")
flags.DEFINE_integer("num_labels", _DEFAULTS.num_labels, "Label-vector size; 0 = the dataset's.")
flags.DEFINE_integer("condition_dim", _DEFAULTS.condition_dim, "Width of the expanded condition joined to z.")
flags.DEFINE_float("aux_weight", _DEFAULTS.aux_weight, "AC-GAN auxiliary multi-label loss weight.")
flags.DEFINE_float("aux_fake_weight", _DEFAULTS.aux_fake_weight,
                   "AC-GAN: weight of the discriminator's auxiliary loss on generated images, relative to real ones "
                   "(1 = Odena et al.; 0 trains the classifier on real images only, so the generator cannot agree a "
                   "private code with it).")
flags.DEFINE_bool("projection", _DEFAULTS.projection,
                  "cgan/acgan: the discriminator takes the labels as a projection term on its final features "
                  "(Miyato & Koyama 2018) instead of an input channel; an AC-GAN's auxiliary head still reads the "
                  "image alone. stackgan_stage1: the caption embedding as that projection term instead of the "
                  "tiled text concatenated to the image features.")
flags.DEFINE_bool("conditional_bn", _DEFAULTS.conditional_bn,
                  "Label-conditioned generators: every BatchNorm's scale and offset also come from the labels "
                  "(conditional BatchNorm) instead of the labels joining z only; stackgan_stage1: from the CA code.")
flags.DEFINE_float("began_gamma", _DEFAULTS.began_gamma, "BEGAN diversity ratio γ = E[L(G(z))] / E[L(x)].")
flags.DEFINE_float("began_lambda_k", _DEFAULTS.began_lambda_k, "BEGAN proportional gain λ_k of the k controller.")
flags.DEFINE_integer("sr_scale", _DEFAULTS.sr_scale, "SRGAN upscaling factor (power of two).")
flags.DEFINE_integer("residual_blocks", _DEFAULTS.residual_blocks, "SRGAN generator residual blocks.")
flags.DEFINE_float("pixel_weight", _DEFAULTS.pixel_weight, "SRGAN pixel MSE weight.")
flags.DEFINE_float("adversarial_weight", _DEFAULTS.adversarial_weight, "SRGAN adversarial loss weight.")
flags.DEFINE_float("perceptual_weight", _DEFAULTS.perceptual_weight,
                   "SRGAN perceptual (feature MSE) weight; needs --perceptual_weights.")
flags.DEFINE_float("tv_weight", _DEFAULTS.tv_weight, "SRGAN total-variation weight.")
flags.DEFINE_string("perceptual_weights", _DEFAULTS.perceptual_weights,
                    "Local file for the perceptual loss: Keras VGG16/VGG19/ResNet50 weights (.h5) or a .keras model.")
flags.DEFINE_string("perceptual_layer", _DEFAULTS.perceptual_layer, "Feature layer name (default per network).")
flags.DEFINE_string("perceptual_network", _DEFAULTS.perceptual_network,
                    "Architecture of --perceptual_weights: auto (from the file name), vgg16, vgg19, resnet50, keras.")
flags.DEFINE_string("text_dir", _DEFAULTS.text_dir, "cub/oxford: Reed's caption folder (default <data_dir>/text_c10).")
flags.DEFINE_string("embeddings", _DEFAULTS.embeddings,
                    "Text models: HDF5 caption embeddings written by `python -m data_prep.embed_captions`.")
flags.DEFINE_integer("embedding_dim", _DEFAULTS.embedding_dim, "Text-embedding size; 0 = the embeddings file's.")
flags.DEFINE_enum("embedding_sampling", _DEFAULTS.embedding_sampling, ["one", "mean"],
                  "Per image per step: one random caption's embedding, or the mean of --num_mean (StackGAN).")
flags.DEFINE_integer("num_mean", _DEFAULTS.num_mean, "Captions averaged with --embedding_sampling=mean.")
flags.DEFINE_bool("use_text", _DEFAULTS.use_text, "Text models: --nouse_text trains the unconditional StackGAN.")
flags.DEFINE_integer("ca_dim", _DEFAULTS.ca_dim, "Conditioning Augmentation code size (StackGAN: 128).")
flags.DEFINE_integer("ca_hidden", _DEFAULTS.ca_hidden,
                     "StackGAN generators: width of a hidden layer in front of Conditioning Augmentation's dense "
                     "layer, so the code can read what is not linear in the caption embedding (0: none, as in the "
                     "paper).")
flags.DEFINE_float("kl_weight", _DEFAULTS.kl_weight, "Weight of the CA KL term in the generator loss (StackGAN: 2).")
flags.DEFINE_bool("standardize_embeddings", _DEFAULTS.standardize_embeddings,
                  "StackGAN: standardise caption embeddings per dimension (training-set mean/std, saved with the "
                  "networks) before CA and the discriminator's text branch.")
flags.DEFINE_float("text_aux_weight", _DEFAULTS.text_aux_weight,
                   "stackgan_stage1 on shapes: weight of a TAC-GAN auxiliary classifier (Dash et al. 2017) that "
                   "learns the image's 24 labels from real images; the generator's fakes must show the labels of "
                   "the caption's image. 0 = off.")
flags.DEFINE_enum("stackgan_variant", _DEFAULTS.stackgan_variant, ["simple", "complex"],
                  "StackGAN Stage-I networks: simple (dense + deconvs) or complex (upsample + conv + residual).")
flags.DEFINE_integer("stackgan_base_size", _DEFAULTS.stackgan_base_size,
                     "stackgan_stage1: side of the smallest feature map (the generator's dense map, the "
                     "discriminator's last); 0 = image_size/16 as in the paper (2x2 at 32x32); image_size/8 or /4 "
                     "drops the last stages (at 32x32, 4 keeps the paper's 4x4).")
flags.DEFINE_bool("matching_aware", _DEFAULTS.matching_aware,
                  "GAN-CLS: real images with wrong text count as fake for the discriminator.")
flags.DEFINE_float("interpolation_weight", _DEFAULTS.interpolation_weight,
                   "GAN-INT: weight of the generator loss on interpolated caption embeddings (0 = off).")
flags.DEFINE_float("interpolation_beta", _DEFAULTS.interpolation_beta, "GAN-INT interpolation β.")
flags.DEFINE_string("stage1_checkpoint", _DEFAULTS.stage1_checkpoint,
                    "stackgan_stage2: the Stage-I run directory (its config.json and newest checkpoint).")
flags.DEFINE_bool("fine_tune_stage1", _DEFAULTS.fine_tune_stage1,
                  "stackgan_stage2: also train Stage-I, at --stage1_lr_scale x --lr_g (default: frozen).")
flags.DEFINE_float("stage1_lr_scale", _DEFAULTS.stage1_lr_scale, "Stage-I learning-rate factor when fine-tuned.")
flags.DEFINE_string("hdgan_scales", _DEFAULTS.hdgan_scales,
                    "hdgan side-output sizes, e.g. 16,32,64 (default image_size/4, /2, image_size).")
flags.DEFINE_bool("hdgan_shared_trunk", _DEFAULTS.hdgan_shared_trunk, "hdgan: share discriminator layers across scales.")
flags.DEFINE_string("text_encoder", _DEFAULTS.text_encoder,
                    "Encoder kind for --text sampling (seq2seq, skip_thought, hub); default: the embeddings file's.")
flags.DEFINE_string("text_encoder_path", _DEFAULTS.text_encoder_path, "Its path; default: the embeddings file's.")
flags.DEFINE_string("sample_text_file", _DEFAULTS.sample_text_file,
                    "Captions for progress grids, one per line (default: held-out captions of the dataset).")
flags.DEFINE_integer("replay_size", _DEFAULTS.replay_size, "Replay buffer of earlier fakes: slots (0 = off).")
flags.DEFINE_float("replay_fraction", _DEFAULTS.replay_fraction, "Share of each fake batch drawn from the replay.")

flags.DEFINE_string("loss", _DEFAULTS.loss, "minimax, non_saturating, hinge, wasserstein or least_squares.")
flags.DEFINE_float("label_smoothing", _DEFAULTS.label_smoothing, "One-sided label smoothing of real targets.")
flags.DEFINE_float("gp_weight", _DEFAULTS.gp_weight, "Gradient-penalty weight λ (0 = off; WGAN-GP uses 10).")
flags.DEFINE_float("ema_decay", _DEFAULTS.ema_decay,
                   "Decay of the generator's exponential moving average (0 = none); grids and exports use it.")
flags.DEFINE_float("mode_seeking_weight", _DEFAULTS.mode_seeking_weight,
                   "Mode-seeking (MSGAN) weight: pairs of fakes of one condition are pushed apart (0 = off).")
flags.DEFINE_string("diff_augment", _DEFAULTS.diff_augment,
                    "DiffAugment policy for every image the discriminator sees, real or fake: a comma-separated subset "
                    "of color, translation, cutout ('' = off).")
flags.DEFINE_float("translation_ratio", _DEFAULTS.translation_ratio,
                   "DiffAugment translation: largest shift as a fraction of the image side.")
flags.DEFINE_integer("n_critic", _DEFAULTS.n_critic, "Discriminator updates per batch.")
flags.DEFINE_integer("n_gen", _DEFAULTS.n_gen, "Generator updates per batch.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size (split across replicas).")
flags.DEFINE_integer("steps", _DEFAULTS.steps, "Total training steps (batches); or use --epochs.")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Total epochs over the dataset; or use --steps.")
flags.DEFINE_float("time_budget", _DEFAULTS.time_budget,
                   "Seconds this invocation may train (0: no limit): it trains --steps (or --epochs) or the part "
                   "of them that fits, measured as it goes, with a linear schedule ending at that step.")
flags.DEFINE_float("time_budget_start", _DEFAULTS.time_budget_start,
                   "Unix time (S=$(date +%s) at the start of a job of several commands) --time_budget counts from, "
                   "instead of the start of training (0).")
flags.DEFINE_float("lr_g", _DEFAULTS.lr_g, "Generator learning rate.")
flags.DEFINE_float("lr_d", _DEFAULTS.lr_d, "Discriminator learning rate.")
flags.DEFINE_float("beta1", _DEFAULTS.beta1, "Adam β1.")
flags.DEFINE_float("beta2", _DEFAULTS.beta2, "Adam β2.")
flags.DEFINE_string("lr_schedule", _DEFAULTS.lr_schedule,
                    "constant, step (× --lr_decay_rate every --lr_decay_steps, floored at --lr_min) or linear "
                    "(held for --lr_hold_fraction of the run, then linearly down to --lr_min at the last step).")
flags.DEFINE_integer("lr_decay_steps", _DEFAULTS.lr_decay_steps, "Steps between decays for --lr_schedule=step.")
flags.DEFINE_float("lr_decay_rate", _DEFAULTS.lr_decay_rate, "Decay factor for --lr_schedule=step.")
flags.DEFINE_float("lr_min", _DEFAULTS.lr_min, "Lower bound of decayed learning rates.")
flags.DEFINE_float("lr_hold_fraction", _DEFAULTS.lr_hold_fraction,
                   "--lr_schedule=linear: fraction of the steps at the initial rate before the decay starts "
                   "(0: decay from the first step; pix2pix / CycleGAN: 0.5).")

# --log_dir (the run directory: checkpoints, samples, TensorBoard logs) is absl.logging's own flag, reused: absl
# writes no log files unless asked to, and a second definition is an error.
flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints, "Checkpoints kept.")
flags.DEFINE_integer("sample_every", _DEFAULTS.sample_every, "Steps between sample grids.")
flags.DEFINE_integer("num_samples", _DEFAULTS.num_samples, "Images in each sample grid.")
flags.DEFINE_integer("log_every", _DEFAULTS.log_every, "Steps between scalar logs.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed for weights, noise and shuffling.")
flags.DEFINE_bool("jit_compile", _DEFAULTS.jit_compile, "Compile the train step with XLA.")
flags.DEFINE_integer("intra_op_threads", _DEFAULTS.intra_op_threads,
                     "Threads one op may use (0: TensorFlow's default, all cores). 1 runs each op on one core and "
                     "independent ops side by side: faster for networks of many small ops on few cores.")
flags.DEFINE_integer("inter_op_threads", _DEFAULTS.inter_op_threads,
                     "Ops that may run at once (0: TensorFlow's default, one per core).")
flags.DEFINE_string("strategy", _DEFAULTS.strategy,
                    "default (one device), mirrored (all local GPUs/devices) or multi_worker (the cluster in "
                    "TF_CONFIG); --batch_size is the global batch, split across replicas.")
flags.DEFINE_string("mixed_precision", _DEFAULTS.mixed_precision,
                    "mixed_float16 (with dynamic loss scaling) or mixed_bfloat16: compute in 16 bits, keep float32 "
                    "weights and outputs; auto: mixed_bfloat16 where the hardware computes bfloat16 natively (CPUs "
                    "with AMX or AVX512-BF16, GPUs of compute capability >= 8.0), else float32. Empty: float32. "
                    "Exports and generator.keras are float32 either way.")
flags.DEFINE_string("export_dir", _DEFAULTS.export_dir, "If set, export the generator here after training.")
flags.DEFINE_string("export_name", _DEFAULTS.export_name, "Model name under --export_dir.")


def config_from_flags():
    """Preset values, then every flag the user gave explicitly on top."""
    overrides = {
        field.name: FLAGS[field.name].value
        for field in dataclasses.fields(configs.TrainConfig)
        if FLAGS[field.name].present
    }
    return configs.from_preset(FLAGS.preset, **overrides)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    common.quiet_logs()
    try:
        # Validation imports no TensorFlow: a bad flag is reported in a second, before any work.
        config = configs.validate(config_from_flags())
    except configs.ConfigError as error:
        print(f"t2i-train: error: {error}", file=sys.stderr)
        return 1
    if FLAGS.dry_run:
        print(config.to_json())
        return 0
    from t2i.training import callbacks as cb
    from t2i.training.run import train

    from t2i.data.folder import ImageFolderError

    try:
        train(config)
    except (configs.ConfigError, cb.NonFiniteLossError, ImageFolderError, FileNotFoundError) as error:
        print(f"t2i-train: error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        # Bad data (an unknown iCLEVR object, a malformed json) is the user's to fix: one line, no traceback,
        # unless --verbosity asks for detail.
        if FLAGS.verbosity > 0:
            raise
        print(f"t2i-train: error: {error}", file=sys.stderr)
        return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
