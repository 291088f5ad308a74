"""Typed configuration: one pydantic model per stage, combined into PipelineConfig.

The section and key names are a public contract (the Prefect UI form, YAML files and
`--set stage.key=value` all use them): add keys, do not rename them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tsatlas.errors import ConfigError


_DATE = r"\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?(Z|[+-]\d{2}:?\d{2})?"
_STEP = r"[+-]?\d+"  # an integer step
_BOUND = rf"^({_STEP}|{_DATE})$"  # a date or time, or an integer step
_SPAN = r"^[1-9]\d*(s|min|h|d|D|w)?$"  # a duration, or a number of steps for an integer start
_DURATION = r"^[1-9]\d*(s|min|h|d|D|w)$"
_FREQ = r"^(\d+|(\d+(\.\d+)?\s*(ns|us|ms|s|sec|min|T|h|H|d|D|w|W)\s*)+)$"

_FORMS = {"freq": "a positive time step such as '1h', '15min', '1D', or '1' for integer steps",
          "start": "a date or time such as 2024-01-31 or 2024-01-31T12:00Z, nor an integer step",
          "end": "a date or time such as 2024-01-31 or 2024-01-31T12:00Z, nor an integer step",
          "span": "a positive duration such as 1d, 6h or 30d (a date start), or a positive number of steps (an integer start)"}

# Flow parameters outside the sections, typed so that the API refuses bad values before a run exists.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
DateText = Annotated[str, Field(pattern=rf"^{_DATE}$")]
Every = Annotated[str, Field(pattern=_DURATION)]
DeploymentName = Annotated[str, Field(pattern=r"^[^/\s]+/[^/\s]+$")]  # flow name / deployment name
Concurrency = Annotated[int, Field(ge=1, le=256)]
PartitionCount = Annotated[int, Field(ge=1, le=100_000)]
Device = Literal["auto", "cpu", "cuda"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IngestConfig(_Section):
    """How to read the input table."""

    model_config = ConfigDict(json_schema_extra=lambda s: _ingest_schema(s))

    time_column: str = Field("timestamp", description="Time column: timestamps or integer steps. Missing: row order is used.")
    id_column: str = Field("series_id", description="Series id column of a long table. Absent from the file: the table is read as wide.")
    layout: Literal["auto", "long", "wide", "single"] = Field(
        "auto",
        description="long: id, time, channels; wide: time plus one column per series; "
        "single: one series whose numeric columns are channels; auto: long if the id column exists, else wide.",
    )
    channels: list[str] | None = Field(None, description="Channel columns to use; default: every column but id, time and label.")
    label_column: str = Field("label", description="Optional per-series label, kept for evaluation only.")
    time_format: str | None = Field(None, pattern=r"%", description="strftime form of the time column's text, e.g. "
                                    "'%d/%m/%Y %H:%M'; default: ISO 8601, else the one common day-first or month-first "
                                    "form that reads every value.")
    freq: str | None = Field(None, pattern=_FREQ, description="Grid step, e.g. '1h', '15min' or '1' for integer "
                             "steps; default: the median step.")
    resample: Literal["none", "mean"] = Field(
        "none", description="none: every time must sit on the grid (one off it is an error); mean: jittered or "
        "irregular times, each row goes to its nearest grid time (multiples of the step: freq, else the round duration "
        "nearest the median spacing, such as 1min) and the rows of one grid time are averaged.")
    max_gap: int = Field(3, ge=0, le=10_000, description="Longest run of missing steps that is filled by interpolation.")
    long_gaps: Literal["skip", "error"] = Field(
        "skip", description="A longer run of missing steps (an outage): skip: kept missing, and the windows that "
        "overlap it are left out (logged, and counted in the summary); error: stop, naming the series, column and time.")
    start: str | None = Field(None, pattern=_BOUND, description="Only rows at or after this time (inclusive): a date "
                              "or time such as 2024-01-31 or 2024-01-31T12:00Z, or an integer step.")
    span: str | None = Field(None, pattern=_SPAN, description="With start: only rows before start + span, a duration "
                             "such as 1d, 6h or 30d (an integer start: a number of steps).")
    end: str | None = Field(None, pattern=_BOUND, description="Without start: only rows before this time (exclusive). "
                            "With start, give span instead.")


    @field_validator("freq", "start", "end", "span", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        """YAML and --set read 2024-01-31 as a date and 1 as an int: both mean the text."""
        if isinstance(v, (dt.date, int)) and not isinstance(v, bool):
            return v.isoformat() if isinstance(v, dt.date) else str(v)
        return v

    @field_validator("freq")
    @classmethod
    def _freq(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ok = int(v) > 0 if _is_step(v) else pd.Timedelta(v) > pd.Timedelta(0)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise ValueError(f"{v!r} is not a positive time step such as '1h', '15min', '1D', or '1' for integer steps")
        return v

    @field_validator("start", "end")
    @classmethod
    def _bound(cls, v: str | None) -> str | None:
        if v is None or _is_step(v):
            return v
        try:
            pd.Timestamp(v)
        except (ValueError, TypeError):
            raise ValueError(f"{v!r} is not a date or time such as 2024-01-31 or 2024-01-31T12:00Z, "
                             "nor an integer step") from None
        return v

    @model_validator(mode="after")
    def _range(self) -> IngestConfig:
        # The same rules as _ingest_schema's, so that the API and the CLI refuse the same input.
        if self.start is not None and self.end is not None:
            raise ValueError(f"give start and span (e.g. span=30d), not start ({self.start}) and end ({self.end})")
        if self.span is not None:
            if self.start is None:
                raise ValueError(f"span ({self.span}) needs a start")
            if _is_step(self.start) != _is_step(self.span):
                raise ValueError(f"span ({self.span}) must be {'a number of steps' if _is_step(self.start) else 'a duration such as 1d'}"
                                 f" for start {self.start}")
        return self

    @property
    def stop(self) -> str | None:
        """The exclusive end of the rows read: end, or start + span."""
        if self.span is None:
            return self.end
        if _is_step(self.start):
            return str(int(self.start) + int(self.span))
        return (pd.Timestamp(self.start) + duration(self.span)).isoformat()


def _is_step(v: str) -> bool:
    return re.fullmatch(_STEP, v.strip()) is not None


def duration(text: str) -> pd.Timedelta:
    """'1d', '6h', '30min', '2w' as a Timedelta."""
    return pd.Timedelta(re.sub(r"(?<=\d)d$", "D", text))


def _ingest_schema(schema: dict[str, Any]) -> None:
    """The cross-field rules of IngestConfig in JSON Schema, which Prefect's API checks before a run exists:
    no end with a start, span only with a start, and a span of the start's kind."""
    given = lambda key, **kw: {"properties": {key: {"type": "string", **kw}}, "required": [key]}  # noqa: E731
    span_is = lambda pattern: {"properties": {"span": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": pattern}]}}}  # noqa: E731
    schema["allOf"] = [
        {"if": given("start"), "then": {"properties": {"end": {"type": "null"}}}},
        {"if": given("span"), "then": given("start")},
        {"if": given("start", pattern=rf"^{_STEP}$"), "then": span_is(r"^[1-9]\d*$")},
        {"if": given("start", pattern=rf"^{_DATE}$"), "then": span_is(_DURATION)},
    ]


class WindowsConfig(_Section):
    """How series are cut into fixed-length windows."""

    length: int = Field(24, ge=2, le=100_000, description="Steps per window.")
    stride: int = Field(24, ge=1, le=100_000, description="Steps between window starts.")
    scale: Literal["global", "series", "window", "none"] = Field(
        "global",
        description="Standardise each channel over all data (global), per series, per window, or not at all.",
    )


class TrainConfig(_Section):
    """The recurrent sequence autoencoder and its training schedule."""

    cell: Literal["lstm", "gru"] = Field("gru", description="Recurrent cell.")
    layers: int = Field(1, ge=1, le=8, description="Stacked recurrent layers in encoder and decoder.")
    hidden: int = Field(32, ge=2, le=4096, description="Hidden units per layer.")
    latent: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field(
        8, description="Size of the embedding z. auto: sizes 2, 4, 8, 16, 32 are fitted on a sample of at most "
        "2,000 windows for at most 8 epochs each, and the smallest whose validation loss is within 10% of the best "
        "is kept (the manifest records every size's loss).")
    bidirectional: bool = Field(False, description="Bidirectional encoder.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout between stacked layers.")
    teacher_forcing: float = Field(
        0.0, ge=0.0, le=1.0,
        description="0: the decoder sees only z. Above 0 it also sees the previous value, the true one with this "
        "probability in training (its own output at inference).")
    patch: Annotated[int, Field(ge=1, le=100_000)] | Literal["auto"] = Field(
        "auto",
        description="Time steps read (and written) per recurrent step, side by side. auto: the fewest that leave at "
        "most 8 recurrent steps per window. Fewer recurrent steps train several times faster and cluster better.")
    objective: Literal["reconstruction", "contrastive", "idec"] = Field(
        "contrastive",
        description="reconstruction: plain autoencoder. contrastive: also trains on an augmented view of each batch "
        "(shifted, rescaled, noisy) with a contrastive loss that makes z ignore such changes. idec: reconstruction, "
        "then a joint phase of reconstruction + a DEC clustering loss around cluster.k centres (k=auto: chosen by "
        "silhouette on the pretrained z).")
    contrastive_weight: float = Field(0.3, gt=0.0, le=100.0, description="contrastive: weight of the contrastive loss.")
    cluster_weight: float = Field(0.1, gt=0.0, le=100.0, description="idec: weight of the clustering loss.")
    cluster_epochs: int = Field(10, ge=1, le=10_000, description="idec: epochs of the joint phase (early stopping applies).")
    epochs: int = Field(40, ge=1, le=10_000, description="Upper bound on epochs; early stopping usually ends sooner.")
    batch_size: Annotated[int, Field(ge=1, le=65_536)] | Literal["auto"] = Field(
        "auto",
        description="Windows per optimisation step (per process). auto: 64 on the CPU; on CUDA the largest power of "
        "two up to 4096 that leaves at least 32 steps per pass over the data, with lr scaled by the square root of "
        "the batch ratio (at most 4x). The manifest records the batch and lr used.")
    min_batches: int = Field(
        5, ge=1, le=100_000,
        description="Fewest optimisation steps in an epoch: a small set is passed over several times per epoch, "
        "so that patience counts real progress.")
    lr: float = Field(1e-2, gt=0.0, le=1.0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="AdamW weight decay.")
    patience: int = Field(4, ge=1, le=1000, description="Epochs without validation improvement before stopping.")
    val_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="Share of windows held out for validation.")
    clip_norm: float = Field(1.0, gt=0.0, description="Gradient norm clip.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU.")
    processes: int = Field(
        1, ge=1, le=1024,
        description="Data-parallel training processes on this machine (torch DDP via torchrun: one per GPU, or CPU "
        "processes with gloo). batch_size is per process.")


K_AUTO_MAX = 100  # the largest k that k=auto may try


def _cluster_schema(schema: dict[str, Any]) -> None:
    """k_min <= k_max in JSON Schema, which Prefect's API checks before a run exists: no keyword compares
    two fields, so one clause per k_min value (k_max required where its default, 8, is too small)."""
    default = ClusterConfig.model_fields["k_max"].default
    schema["allOf"] = [{"if": {"properties": {"k_min": {"const": v}}, "required": ["k_min"]},
                        "then": {"properties": {"k_max": {"minimum": v}}, **({"required": ["k_max"]} if v > default else {})}}
                       for v in range(3, K_AUTO_MAX + 1)]


class ClusterConfig(_Section):
    """K-means over the standardised embeddings."""

    model_config = ConfigDict(json_schema_extra=lambda s: _cluster_schema(s))

    k: Annotated[int, Field(ge=2, le=10_000)] | Literal["auto"] = Field(
        "auto", description="Number of clusters (at least 2), or 'auto' to choose by silhouette.")
    k_min: int = Field(2, ge=2, le=K_AUTO_MAX, description="Smallest k tried when k is auto.")
    k_max: int = Field(8, ge=2, le=K_AUTO_MAX, description="Largest k tried when k is auto (at least k_min).")
    sample: int = Field(5000, ge=100, description="Windows sampled to score silhouette.")

    @model_validator(mode="after")
    def _range(self) -> ClusterConfig:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must not exceed k_max ({self.k_max})")
        return self


class GenerateConfig(_Section):
    """Synthetic series per cluster."""

    method: Literal["latent", "timegan"] = Field(
        "latent", description="latent: sample a Gaussian mixture in z and decode; timegan: a cluster-conditional TimeGAN.")
    n: int = Field(100, ge=1, le=1_000_000, description="Synthetic series in all, split in proportion to cluster sizes.")
    per_cluster: list[int] | None = Field(None, description="Synthetic series per cluster (overrides n), one count per cluster.")
    length: int | None = Field(None, ge=2, le=1_000_000, description="Steps per synthetic series; longer than a window chains windows.")
    components: int = Field(3, ge=1, le=64, description="Gaussian mixture components per cluster (latent).")
    noise: Literal["nearest", "residual", "none"] = Field(
        "nearest", description="latent: add to each decoded sample the reconstruction residual of a training "
        "window of its cluster, drawn from the `donors` nearest to the sample in z (nearest) or from all of them "
        "(residual), or keep the decoder's smooth output (none).")
    donors: int = Field(
        64, ge=1, le=100_000, description="noise=nearest: how many windows of its cluster nearest a sample its "
        "residual is drawn from. Fewer fit the sample's shape better (a lower discriminative score) and bring it "
        "closer to real windows (a lower nearest-real ratio); benchmarks/RESULTS.md, \"Donors near in z\".")
    gan_iterations: int = Field(1250, ge=1, le=1_000_000, description="Iterations per TimeGAN training phase (the paper: 10,000).")
    gan_hidden: int = Field(24, ge=2, le=1024, description="TimeGAN hidden width.")
    gan_layers: int = Field(3, ge=1, le=8, description="Recurrent layers per TimeGAN network.")
    gan_cell: Literal["gru", "lstm"] = Field("gru", description="Recurrent cell of every TimeGAN network.")
    gan_batch_size: int = Field(128, ge=2, le=65_536, description="TimeGAN batch size.")
    gan_patch: Annotated[int, Field(ge=1, le=100_000)] | Literal["auto"] = Field(
        "auto", description="Time steps every TimeGAN network reads (and writes) per recurrent step, side by side. "
        "auto: the fewest that leave at most 24 recurrent steps (1, every step, for windows of up to 24 steps; "
        "unpatched, the GAN's cost grows with the window's length: hours on a CPU at a few hundred steps).")
    gan_mmd: float = Field(
        30.0, ge=0, le=1e4, description="Weight of the kernel two-sample loss (windows and their increments) in the "
        "TimeGAN generator's loss; 0 gives the paper's losses.")
    gan_critic: float = Field(
        10.0, ge=0, le=1e4, description="Weight of the window critic's adversarial term in the TimeGAN generator's "
        "loss (a GRU classifier of the recovered windows, every channel standardised, as the post-hoc classifier "
        "reads them); 0: the paper's latent discriminator only.")
    evaluate: bool = Field(True, description="Compute generation metrics against the real windows.")
    eval_repeats: int = Field(1, ge=1, le=100, description="Seeds per post-hoc metric (mean and std are reported).")
    eval_iterations: int = Field(
        500, ge=10, le=100_000,
        description="Most training iterations of each post-hoc classifier (the discriminative score); after 300, each "
        "stops once its held-out loss has not improved for 100 iterations. The predictive GRUs train at most 200.")
    eval_strict: bool = Field(
        False, description="Also report a stricter discriminative score (two GRU layers of C units) beside the paper's.")


class PipelineConfig(_Section):
    """Everything the atlas flow needs, one section per stage."""

    ingest: IngestConfig = Field(default_factory=IngestConfig)
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed for every random step.")

    def sections(self) -> dict[str, Any]:
        """The flows' parameters: one per stage section, plus seed (`atlas(data=..., **cfg.sections())`)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


def _format_error(err: ValidationError, prefix: str = "") -> str:
    """One clause per offending key (the first reason when a union gave several)."""
    parts: dict[str, str] = {}
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("literal[", "int", "function", "constrained-")))
        if e["type"] == "extra_forbidden":
            parts.setdefault(key, f"{prefix}{key}: unknown key")
        elif e["type"] == "string_pattern_mismatch" and key.rsplit(".", 1)[-1] in _FORMS:
            parts.setdefault(key, f"{prefix}{key}: {e.get('input')!r} is not {_FORMS[key.rsplit('.', 1)[-1]]}")
        else:
            parts.setdefault(key, f"{prefix}{key}: {e['msg']} (got {e.get('input')!r})")
    return "; ".join(parts.values())


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn `["train.epochs=5", "cluster.k=auto"]` into a nested dict with YAML-typed values."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected stage.key=value")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        if not all(keys):
            raise ConfigError(f"--set {item!r}: expected stage.key=value")
        value = yaml.safe_load(raw) if raw.strip() else None
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {path}: {k} is not a section")
        node[keys[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | None = None, sets: list[str] | None = None, seed: int | None = None) -> PipelineConfig:
    """Build the config: defaults, then a YAML file, then `--set` items, then `--seed`.

    Raises:
        ConfigError: naming the file and key of the first invalid or unknown value.
    """
    data: dict[str, Any] = {}
    source = ""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (ingest, windows, train, cluster, generate)")
        source = f"{path}: "
    try:
        PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, source)) from None
    if sets:
        data = _merge(data, parse_set(sets))
    if seed is not None:
        data["seed"] = seed
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, "--set " if sets else "")) from None
