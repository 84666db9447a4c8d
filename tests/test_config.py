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
