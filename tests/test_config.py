import json

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


CROSS_FIELD = [  # (sets, accepted): rules between two keys
    (["cluster.k_min=5", "cluster.k_max=3"], False), (["cluster.k_min=5", "cluster.k_max=5"], True),
    (["cluster.k_min=12"], False), (["cluster.k_min=8"], True),   # k_max's default is 8
    (["ingest.start=2024-02-01", "ingest.end=2024-01-01"], False), (["ingest.span=1d"], False),
    (["ingest.start=2024-02-01", "ingest.span='24'"], False), (["ingest.start='100'", "ingest.span=1d"], False),
    (["ingest.start=2024-01-01", "ingest.span=7d"], True), (["ingest.start='100'", "ingest.span='50'"], True),
    (["ingest.end=2024-01-01"], True), (["ingest.start=2024-01-01"], True),
]


@pytest.mark.parametrize("sets,accepted", CROSS_FIELD)
def test_cross_field_rules_are_the_same_in_the_config_and_in_the_flows_json_schema(sets, accepted):
    """The schema is what Prefect's API checks before a run exists; the models are what the CLI and
    Python callers get: both must accept and refuse the same input."""
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import validate

    from flows.pipeline import atlas

    try:
        load_config(sets=sets)
        model_ok = True
    except ConfigError:
        model_ok = False
    params = json.loads(json.dumps(parse_set(sets), default=str))  # as a form or JSON client sends them
    schema_ok = not validate(params, parameter_schema(atlas.fn).model_dump_for_openapi())
    assert (model_ok, schema_ok) == (accepted, accepted)


def test_a_partitions_span_gives_its_end():
    from tsatlas.config import IngestConfig
    assert IngestConfig(start="2024-01-01", span="30d").stop == "2024-01-31T00:00:00"
    assert IngestConfig(start="2024-01-01T06:00Z", span="6h").stop == "2024-01-01T12:00:00+00:00"
    assert IngestConfig(start="100", span="50").stop == "150"
    assert IngestConfig(end="2024-01-01").stop == "2024-01-01"
