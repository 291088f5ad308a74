import pytest

from tsatlas.config import PipelineConfig, load_config, parse_set
from tsatlas.errors import ConfigError


def test_defaults_are_valid():
    cfg = load_config()
    assert cfg == PipelineConfig()
    assert cfg.windows.length == 24 and cfg.cluster.k == "auto"


def test_set_values_are_typed_and_nested():
    assert parse_set(["train.epochs=5", "cluster.k=auto", "train.bidirectional=true"]) == {
        "train": {"epochs": 5, "bidirectional": True}, "cluster": {"k": "auto"}}
    cfg = load_config(sets=["train.epochs=5", "cluster.k=4", "windows.scale=series"], seed=7)
    assert (cfg.train.epochs, cfg.cluster.k, cfg.windows.scale, cfg.seed) == (5, 4, "series", 7)


@pytest.mark.parametrize("item,named", [
    ("train.epoch=5", "train.epoch"),              # unknown key
    ("trainn.epochs=5", "trainn"),                 # unknown section
    ("train.epochs=many", "train.epochs"),         # wrong type
    ("windows.length=0", "windows.length"),        # out of bounds
    ("cluster.k=1", "cluster.k"),
    ("train.cell=transformer", "train.cell"),
    ("nokey", "nokey"),
])
def test_bad_set_names_the_key(item, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(sets=[item])


def test_yaml_file_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 7\n  hidden: 16\nwindows:\n  length: 12\n")
    cfg = load_config(str(f), ["train.epochs=3"])
    assert (cfg.train.epochs, cfg.train.hidden, cfg.windows.length) == (3, 16, 12)


def test_yaml_unknown_key_names_file_and_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epoks: 7\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: train\.epoks: unknown key"):
        load_config(str(f))
