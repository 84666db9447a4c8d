import pytest

from uniwav.config import ConfigError, FeatureConfig, PretrainConfig, from_dict, load_config, preset_names, to_dict


def test_presets_load_and_validate():
    assert {"tiny", "base", "large"} <= set(preset_names())
    tiny = load_config(PretrainConfig, "tiny")
    base = load_config(PretrainConfig, "base")
    assert tiny.model.encoder.layers == 6 and base.model.encoder.dim == 768 and base.model.encoder.layers == 12
    assert load_config(PretrainConfig, "large").model.decoder.layers == 24


def test_dotted_overrides_are_typed():
    cfg = load_config(PretrainConfig, "tiny", ["optim.lr=3e-4", "model.encoder.layers=4", "model.clustering.top_layers=2"])
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.model.encoder.layers, int) and cfg.model.encoder.layers == 4


def test_typo_is_an_error_naming_the_key_with_a_suggestion():
    with pytest.raises(ConfigError, match="layerz") as err:
        load_config(PretrainConfig, "tiny", ["model.encoder.layerz=3"])
    assert "layers" in str(err.value)


def test_wrong_type_and_bad_values_are_errors():
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(PretrainConfig, "tiny", ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="top_layers"):
        load_config(PretrainConfig, "tiny", ["model.clustering.top_layers=9"])
    with pytest.raises(ConfigError, match="decoder.layers"):
        load_config(PretrainConfig, "tiny", ["model.decoder.layers=3"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(PretrainConfig, "tiny", ["optim.lr"])
    with pytest.raises(ConfigError, match="unknown config preset"):
        load_config(PretrainConfig, "tiniest")


def test_typo_in_yaml_file_names_the_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("optim:\n  lrate: 0.1\n")
    with pytest.raises(ConfigError, match="mine.yaml"):
        load_config(PretrainConfig, str(f))


def test_dict_round_trip():
    cfg = load_config(PretrainConfig, "tiny", ["model.features.n_mels=40"])
    assert from_dict(PretrainConfig, to_dict(cfg)) == cfg


def test_feature_config_validation():
    with pytest.raises(ConfigError, match="hop_length"):
        FeatureConfig(hop_length=2048).validate()
    with pytest.raises(ConfigError, match="fmax"):
        FeatureConfig(fmax=9000.0).validate()
    assert FeatureConfig().frame_rate == 50.0


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


# A preset says only how it differs from its config class's defaults (the best recipe we know); what a task
# preset may change is the size of a from-scratch (--init none) model. Anything else belongs in the dataclass.
PRESET_CLASSES = {"tiny": "PretrainConfig", "base": "PretrainConfig", "large": "PretrainConfig", "asr_tiny": "FinetuneASRConfig",
                  "tokenizer_tiny": "FinetuneTokenizerConfig", "tts_tiny": "FinetuneTTSConfig", "vocoder_tiny": "TrainVocoderConfig"}
TASK_PRESET_MAY_CHANGE = ("model.encoder.", "model.decoder.")


@pytest.mark.parametrize("name", sorted(PRESET_CLASSES))
def test_every_preset_value_differs_from_the_default_it_replaces(name):
    from importlib import resources

    import yaml

    import uniwav.config as configs

    assert set(PRESET_CLASSES) == set(preset_names())
    preset = yaml.safe_load((resources.files("uniwav.configs") / f"{name}.yaml").read_text()) or {}
    defaults = dict(_leaves(to_dict(getattr(configs, PRESET_CLASSES[name])())))
    for key, value in _leaves(preset):
        assert key in defaults and value != defaults[key], f"{name}.yaml: {key}={value!r} repeats the default; remove it from the preset"
        if name in ("asr_tiny", "tokenizer_tiny", "tts_tiny"):
            assert key.startswith(TASK_PRESET_MAY_CHANGE), f"{name}.yaml: {key} is part of the task's recipe: make it the dataclass default"


def test_a_tts_model_built_in_python_samples_with_the_measured_defaults():
    from uniwav.config import FinetuneTTSConfig, TTSModelConfig

    sampler = TTSModelConfig().sampler
    assert (sampler.nfe, sampler.guidance, sampler.sway) == (16, 2.0, -1.0)  # docs/results.md: Whisper CER 0.75 vs 0.95 with guidance 1
    assert load_config(FinetuneTTSConfig, "tts_tiny").model.sampler == sampler
