import pytest

from vaekit.config import Config, load_yaml
from vaekit.errors import ConfigError


def test_overrides_by_field_flag_and_dotted_name():
    c = Config().replace({"beta": "4", "model": "conv", "data.limit": 10, "hidden-dims": "8,16"})
    assert c.train.beta == 4.0 and c.model.arch == "conv" and c.data.limit == 10
    assert c.model.hidden_dims == (8, 16)


def test_round_trip_through_dict():
    c = Config().replace({"latent_dim": 7, "image_shape": (1, 8, 8), "ema_decay": 0.99})
    assert Config.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("overrides, message", [
    ({"betta": 1}, "unknown config key 'betta' .*did you mean 'beta'"),
    ({"lr": -1}, "train.lr must be at least 0"),
    ({"epochs": 0}, "train.epochs must be at least 1"),
    ({"epochs": "ten"}, "train.epochs must be an integer"),
    ({"likelihood": "poisson"}, "model.likelihood must be one of bernoulli"),
    ({"model": "transformer"}, "model.arch must be one of mlp, conv"),
    ({"val_fraction": 0.9}, "data.val_fraction must be at most 0.5"),
    ({"init_bias": "maybe"}, "train.init_bias must be true or false"),
    ({"epochs": True}, "train.epochs must be an integer, got True"),  # YAML's true
    ({"image_shape": "1,-28,28"}, "model.image_shape must be at least 1"),  # each element of a list
    ({"seed": 2**64}, "train.seed must be at most"),  # what torch's generators take
])
def test_bad_values_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(overrides)


def test_yaml_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  arch: conv\n  latent_dim: 5\ntrain:\n  beta: 2\n")
    c = Config.from_dict(load_yaml(path))
    assert c.model.arch == "conv" and c.model.latent_dim == 5 and c.train.beta == 2.0
    path.write_text("model:\n  arch: conv\n  depth: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.depth'"):
        Config.from_dict(load_yaml(path))
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")


def test_shipped_configs_are_valid():
    from pathlib import Path

    from vaekit.video_config import VideoConfig

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:  # video configs (sequences: data.seq_len) are read by `vaekit video train`
        raw = load_yaml(path)
        (VideoConfig if "seq_len" in raw.get("data", {}) else Config).from_dict(raw)
