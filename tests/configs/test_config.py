"""Presets, flag validation and resume guards of TrainConfig."""
import dataclasses

import pytest

from t2i import configs


@pytest.mark.parametrize("name", sorted(configs.PRESETS))
def test_every_preset_validates(name, tmp_path):
    preset = configs.PRESETS[name]
    length = {} if preset.get("steps") or preset.get("epochs") else {"steps": 10}
    if preset["model"] in configs.TEXT_MODELS:
        # The user supplies the data paths; the preset supplies everything else.
        (tmp_path / "emb.h5").write_bytes(b"")
        length.update(embeddings=str(tmp_path / "emb.h5"), data_dir=str(tmp_path))
        if preset["model"] == "stackgan_stage2":
            length["stage1_checkpoint"] = str(tmp_path)
    config = configs.from_preset(name, log_dir=str(tmp_path), **length)
    assert configs.validate(config) is config
    for key, value in preset.items():
        assert getattr(config, key) == value


def test_steps_given_by_flag_replace_the_presets_epochs(tmp_path):
    config = configs.validate(configs.from_preset("dcgan", log_dir=str(tmp_path), steps=7))
    assert (config.steps, config.epochs) == (7, 0)
    config = configs.validate(configs.from_preset("began_shapes", log_dir=str(tmp_path), epochs=2))
    assert (config.steps, config.epochs) == (0, 2)


def test_flags_override_preset_values(tmp_path):
    config = configs.from_preset("dcgan", batch_size=8, log_dir=str(tmp_path), steps=3)
    assert config.batch_size == 8 and config.image_size == 64 and config.lr_g == 2e-4


@pytest.mark.parametrize("changes,flag", [
    (dict(model="nope"), "--model"),
    (dict(batch_size=0), "--batch_size"),
    (dict(batch_size=-3), "--batch_size"),
    (dict(image_size=100), "--image_size"),
    (dict(image_size=512), "--image_size"),
    (dict(dataset="folder"), "--data_dir"),
    (dict(dataset="folder", data_dir="/definitely/missing"), "--data_dir"),
    (dict(steps=0), "--steps"),
    (dict(steps=3, epochs=2), "--steps"),
    (dict(log_dir=""), "--log_dir"),
    (dict(lr_g=0.0), "--lr_g"),
    (dict(beta1=1.0), "--beta1"),
    (dict(loss="hinge", label_smoothing=0.1), "--label_smoothing"),
    (dict(lr_schedule="step"), "--lr_decay_steps"),
    (dict(export_dir="out"), "--export_name"),
    (dict(channels=1), "--channels"),
    (dict(model="began", normalization="layer"), "--normalization"),
    (dict(diff_augment="translation,flip"), "--diff_augment"),
    (dict(diff_augment="translation,translation"), "--diff_augment"),
    (dict(model="srgan", diff_augment="translation"), "--diff_augment"),
    (dict(translation_ratio=0.0), "--translation_ratio"),
])
def test_bad_values_name_the_flag(changes, flag, tmp_path):
    config = dataclasses.replace(configs.TrainConfig(log_dir=str(tmp_path), steps=5), **changes)
    with pytest.raises(configs.ConfigError) as error:
        configs.validate(config)
    message = str(error.value)
    assert message.startswith(flag) and "Received:" in message and "\n" not in message


def test_unknown_preset_and_keys_are_errors():
    with pytest.raises(configs.ConfigError, match="--preset"):
        configs.from_preset("nope")
    with pytest.raises(configs.ConfigError, match="bogus"):
        configs.TrainConfig.from_dict({"bogus": 1})


def test_config_round_trips_through_the_run_directory(tmp_path):
    config = configs.from_preset("dcgan_shapes", log_dir=str(tmp_path))
    configs.save(config, str(tmp_path))
    assert configs.load(str(tmp_path)) == config
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(configs.ConfigError, match="config.json: not a valid t2i config"):
        configs.load(str(tmp_path))


def test_resume_guard_allows_training_changes_but_not_architecture(tmp_path):
    saved = configs.from_preset("dcgan_shapes", log_dir=str(tmp_path))
    configs.check_resume_compatible(saved, saved.replace(steps=5000, lr_g=1e-4))
    with pytest.raises(configs.ConfigError, match="--gf_dim: .*gf_dim=32"):
        configs.check_resume_compatible(saved, saved.replace(gf_dim=64))


def test_resume_guard_refuses_switching_between_a_constant_rate_and_a_schedule(tmp_path):
    """A constant rate is a variable in the optimizer's checkpoint and a schedule is not, so the switch would fail
    deep in the restore; one schedule for another keeps the same optimizer state."""
    constant = configs.from_preset("dcgan_shapes", log_dir=str(tmp_path))
    step = constant.replace(lr_schedule="step", lr_decay_steps=100)
    for saved, requested in ((constant, step), (step, constant)):
        with pytest.raises(configs.ConfigError, match=f"^--lr_schedule: .*lr_schedule={saved.lr_schedule!r}.* "
                                                      f"Received: lr_schedule={requested.lr_schedule!r}$"):
            configs.check_resume_compatible(saved, requested)
    configs.check_resume_compatible(step, step.replace(lr_schedule="linear"))
