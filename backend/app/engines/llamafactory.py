"""Driver for LLaMA-Factory 0.9.5 (`llamafactory-cli` in its own venv, `make train-env`):
engine discovery, training spec -> validated yaml, dataset_info.json, the job folder layout and
environment, and starting / stopping `train` and `export` runs as supervised processes.

Plain arguments in, plain dataclasses out: no FastAPI, no ORM (DESIGN principle 5). The jobs layer
keeps the state (ProcessHandle fields, offsets) in the database and calls back in here.

Engine behaviours this relies on (read in the installed 0.9.5 source, checked by the tests):
- With LLAMABOARD_ENABLED=1, LogCallback installs a SIGABRT handler that makes the Trainer stop at
  the next step; the sft/pt/dpo/kto workflows then save the model (adapter), trainer_state.json
  and the metrics, and the process exits 0. LLAMABOARD_WORKDIR receives running_log.txt.
- `overwrite_output_dir: true` deletes an old trainer_log.jsonl; without it and without
  `resume_from_checkpoint`, LLaMA-Factory resumes from the last checkpoint by itself, or refuses a
  non-empty output_dir. We always say which one we mean.
- SwanLab keys: use_swanlab, swanlab_project, swanlab_workspace, swanlab_run_name, swanlab_mode
  (cloud | local), swanlab_logdir, swanlab_api_key. The key is never written to the yaml: swanlab
  reads SWANLAB_API_KEY from the environment (pydantic settings, prefix SWANLAB_).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from app.config import Settings, settings
from app.engines.process import (
    DEFAULT_NICE,
    ProcessHandle,
    StopResult,
    start_process,
    tail,
    terminate_group,
)

CLI_NAME = "llamafactory-cli"
INSTALL_HINT = "make train-env"
SUPPORTED_VERSION = "0.9.5"

STAGES = ("sft", "pt", "dpo", "kto")
FINETUNING_TYPES = ("lora", "qlora", "full", "freeze")
# What a dataset holds, as the jobs layer classifies it: instruction/conversation data ("sft"),
# chosen/rejected pairs ("preference", `ranking: true`), single answers with a true/false
# `kto_tag` ("kto"), or plain text for continued pre-training ("text").
DATASET_KINDS = ("sft", "preference", "kto", "text")
# The datasets service's detected formats (services/dataset_formats.DETECTED_FORMATS) are
# accepted as kinds too.
FORMAT_KINDS = {"alpaca": "sft", "sharegpt": "sft", "openai": "sft"}
STAGE_DATASET_KIND = {"sft": "sft", "pt": "text", "dpo": "preference", "kto": "kto"}
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
SWANLAB_MODES = ("cloud", "local")
EXPORT_DTYPES = ("auto", "float16", "bfloat16", "float32")

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?$")
_LORA_TARGET_RE = re.compile(r"^[A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*$")
_SWANLAB_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,100}$")
_TEMPLATE_RE = re.compile(r"register_template\(\s*name=\"([^\"]+)\"")


class EngineUnavailable(RuntimeError):
    """The training engine cannot run; `status` says why and what to run."""

    def __init__(self, status: EngineStatus) -> None:
        super().__init__(status.missing or "training engine unavailable")
        self.status = status


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class EngineStatus:
    """Whether `llamafactory-cli` is there and its venv runs."""

    available: bool
    bin_dir: Path
    version: str | None
    missing: str | None  # why it is unavailable, in words
    install_hint: str = INSTALL_HINT
    quantization: bool = False  # bitsandbytes installed (QLoRA)

    @property
    def cli(self) -> Path:
        return self.bin_dir / CLI_NAME

    @property
    def version_supported(self) -> bool:
        """The yaml keys and behaviours here were checked against this version only."""
        return self.version == SUPPORTED_VERSION


def resolve_bin_dir(configured: Path | str | None = None) -> Path:
    """TRAIN_ENGINE_BIN (or `configured`) as a bin/ folder; the executable's path also works."""
    path = Path(configured) if configured is not None else settings.TRAIN_ENGINE_BIN
    path = path.expanduser()
    return path.parent if path.name == CLI_NAME else path


# One probe per venv state: a stat() per call, a subprocess (~50 ms) only when the venv changed.
# `llamafactory-cli version` would import torch (about 5 s here), so the probe asks the venv's
# python for the installed package version instead.
_PROBE = (
    "import importlib.metadata as m, importlib.util as u, json\n"
    "assert u.find_spec('llamafactory') is not None, 'llamafactory is not installed'\n"
    "print(json.dumps({'version': m.version('llamafactory'),"
    " 'bitsandbytes': u.find_spec('bitsandbytes') is not None}))\n"
)
_status_cache: dict[Path, tuple[tuple[int, int], EngineStatus]] = {}
_status_lock = threading.Lock()


def _stat_key(*paths: Path) -> tuple[int, int] | None:
    try:
        stats = [p.stat() for p in paths]
    except OSError:
        return None
    return stats[0].st_mtime_ns, stats[1].st_mtime_ns


def engine_status(bin_dir: Path | str | None = None, *, refresh: bool = False) -> EngineStatus:
    """Find and probe the engine (cached until the venv's cli or python changes)."""
    bin_path = resolve_bin_dir(bin_dir)
    cli, python = bin_path / CLI_NAME, bin_path / "python"
    if not cli.is_file() or not os.access(cli, os.X_OK):
        return EngineStatus(False, bin_path, None, f"{CLI_NAME} not found in {bin_path}")
    key = _stat_key(cli, python)
    if key is None:
        return EngineStatus(False, bin_path, None, f"{python} is missing: the venv is broken")
    with _status_lock:
        cached = _status_cache.get(bin_path)
        if cached is not None and cached[0] == key and not refresh:
            return cached[1]
        status = _probe(bin_path, python)
        _status_cache[bin_path] = (key, status)
        return status


def _probe(bin_path: Path, python: Path) -> EngineStatus:
    try:
        done = subprocess.run(  # noqa: S603  (our own fixed probe, no shell)
            [str(python), "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return EngineStatus(False, bin_path, None, f"the training venv does not run: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return EngineStatus(False, bin_path, None, f"the training venv does not run: {last}")
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return EngineStatus(False, bin_path, None, "the training venv gave no version")
    return EngineStatus(
        True, bin_path, str(info["version"]), None, quantization=bool(info["bitsandbytes"])
    )


def detect_gpus() -> list[str]:
    """NVIDIA GPUs this process may use (names), without importing torch: the driver's
    /proc/driver/nvidia/gpus/*/information, else `nvidia-smi -L`; CUDA_VISIBLE_DEVICES=""
    or "-1" hides them all, a list of indices keeps that many."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    names: list[str] = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            text = info.read_text(errors="replace")
        except OSError:
            continue
        match = re.search(r"^Model:\s*(.+)$", text, re.MULTILINE)
        names.append(match.group(1).strip() if match else info.parent.name)
    if not names and (smi := shutil.which("nvidia-smi")):
        try:
            done = subprocess.run(  # noqa: S603
                [smi, "-L"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            names = [
                line.split(":", 1)[1].split("(UUID")[0].strip()
                for line in done.stdout.splitlines()
                if line.startswith("GPU ") and ":" in line
            ]
    if visible is not None:
        wanted = [part for part in visible.split(",") if part.strip()]
        names = names[: len(wanted)]
    return names


_template_cache: dict[Path, tuple[int, tuple[str, ...]]] = {}


def list_templates(bin_dir: Path | str | None = None) -> tuple[str, ...]:
    """The chat template names the installed LLaMA-Factory registers (read from its source,
    no import); () when the engine is not installed."""
    lib = resolve_bin_dir(bin_dir).parent / "lib"
    sources = sorted(lib.glob("python3*/site-packages/llamafactory/data/template.py"))
    if not sources:
        return ()
    source = sources[-1]
    mtime = source.stat().st_mtime_ns
    cached = _template_cache.get(source)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    names = tuple(sorted(set(_TEMPLATE_RE.findall(source.read_text(encoding="utf-8")))))
    _template_cache[source] = (mtime, names)
    return names


# ------------------------------------------------------------------------ the job folder


@dataclass(frozen=True)
class JobLayout:
    """Where everything of one task lives, under TRAINING_OUTPUT_DIR/<task-id>/."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"  # dataset_info.json + the dataset files

    @property
    def output_dir(self) -> Path:
        return self.root / "output"  # LLaMA-Factory's output_dir: adapter, checkpoints, logs

    @property
    def export_dir(self) -> Path:
        return self.root / "merged"

    @property
    def swanlab_dir(self) -> Path:
        return self.root / "swanlog"

    @property
    def hf_home(self) -> Path:
        return self.root / "hf"

    @property
    def mpl_dir(self) -> Path:
        return self.root / "mpl"

    @property
    def train_yaml(self) -> Path:
        return self.root / "train.yaml"

    @property
    def train_log(self) -> Path:
        return self.root / "train.log"

    @property
    def export_yaml(self) -> Path:
        return self.root / "export.yaml"

    @property
    def export_log(self) -> Path:
        return self.root / "export.log"


def job_layout(task_id: int | str, output_root: Path | None = None) -> JobLayout:
    """The layout of task `task_id` under TRAINING_OUTPUT_DIR (or `output_root`)."""
    name = str(task_id)
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"not a usable folder name: {name!r}")
    return JobLayout((output_root or settings.TRAINING_OUTPUT_DIR) / name)


def is_local_model(base_model: str) -> bool:
    """A path (absolute, ~, or ./) rather than a hub id."""
    return base_model.startswith(("/", "~", "."))


# Keys of the server's own settings (secrets, database URL, ...) never reach an engine process.
_SERVER_ONLY = {name.upper() for name in Settings.model_fields} | {
    "MODELTRAIN_ENV_FILE",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
}


def engine_env(
    *,
    bin_dir: Path,
    hf_home: Path,
    mpl_dir: Path,
    offline: bool,
    llamaboard_workdir: Path | None = None,
    swanlab_api_key: str | None = None,
    hf_hub_cache: Path | None = None,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    cpu_threads: int | None = None,
) -> dict[str, str]:
    """The whole environment of an engine process: the server's, minus its own settings, with
    caches inside the job folder, the venv's bin/ first on PATH (torchrun for multi-GPU), and
    the LlamaBoard switch that makes SIGABRT a graceful stop. `cpu_threads` sets torch's
    intra-op thread count (OMP_NUM_THREADS, MKL_NUM_THREADS); None leaves torch's default."""
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if key.upper() not in _SERVER_ONLY
    }
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    env["HF_HOME"] = str(hf_home)
    env["MPLCONFIGDIR"] = str(mpl_dir)
    if hf_hub_cache is not None:  # share downloaded hub models between tasks
        env["HF_HUB_CACHE"] = str(hf_hub_cache)
    env["DISABLE_VERSION_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"  # the log follows the run
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    if llamaboard_workdir is not None:
        env["LLAMABOARD_ENABLED"] = "1"
        env["LLAMABOARD_WORKDIR"] = str(llamaboard_workdir)
    if swanlab_api_key:
        env["SWANLAB_API_KEY"] = swanlab_api_key
    if cpu_threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(cpu_threads)
    env.update(extra or {})
    return env


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def train_cpu_threads(
    configured: int,
    *,
    gpu_count: int,
    cores: int,
    concurrent: int = 1,
    inherited: str | None = None,
) -> int | None:
    """The torch thread count for a training or export process (TRAIN_CPU_THREADS).

    `configured` > 0 is used as it is. 0 (auto) leaves a GPU host and an operator's own
    OMP_NUM_THREADS (`inherited`) alone; on a CPU-only host it is the usable cores less one,
    shared among the `concurrent` runs allowed at once, at least 1. The engine runs at nice 19
    and torch's threads wait for each other at every operation: with a thread on every core, one
    core kept busy by anything at normal priority (the web server, a chat) starves that thread
    and with it the whole run (bench/cpu_threads.py measures it). The core left over absorbs
    that load.
    """
    if configured > 0:
        return configured
    if gpu_count > 0 or (inherited is not None and inherited.strip()):
        return None
    return max(1, (cores - 1) // max(1, concurrent))


# ------------------------------------------------------------------------------ datasets


def write_dataset_info(dataset_dir: Path, entries: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write dataset_dir/dataset_info.json (atomically) and return its path. The entries come
    from the datasets service (`dataset_formats.dataset_info_entry`)."""
    for name in entries:
        if not _NAME_RE.match(name):
            raise ValueError(f"dataset name {name!r} must match {_NAME_RE.pattern}")
    dataset_dir.mkdir(parents=True, exist_ok=True)
    path = dataset_dir / "dataset_info.json"
    _write_atomic(path, json.dumps(entries, ensure_ascii=False, indent=2) + "\n")
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------- the train spec


@dataclass(frozen=True)
class TrainSpec:
    """Everything one `llamafactory-cli train` run needs. Field names are the API's field names
    too, so a SpecProblem's `field` can be shown against the right form input."""

    base_model: str  # an absolute local path or a hub id
    template: str
    datasets: tuple[str, ...]  # names in dataset_dir/dataset_info.json
    dataset_dir: Path
    output_dir: Path
    stage: str = "sft"
    finetuning_type: str = "lora"
    # exactly one of these two
    num_train_epochs: float | None = 3.0
    max_steps: int | None = None
    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 8
    cutoff_len: int = 1024
    max_samples: int | None = None
    lora_rank: int = 8
    lora_alpha: int | None = None  # None: LLaMA-Factory's default, 2 x rank
    lora_dropout: float = 0.0
    lora_target: str = "all"
    freeze_trainable_layers: int = 2
    quantization_bit: int = 4  # qlora only
    pref_beta: float = 0.1  # dpo / kto
    warmup: float = 0.0  # < 1: a fraction of the steps; >= 1: a number of steps
    lr_scheduler_type: str = "cosine"
    save_steps: int = 500
    save_total_limit: int | None = 3
    logging_steps: int = 10
    val_size: float = 0.0
    eval_steps: int | None = None  # None: evaluate at every save_steps (when val_size > 0)
    bf16: bool = False
    fp16: bool = False
    seed: int = 42
    preprocessing_num_workers: int | None = None
    trust_remote_code: bool = False
    use_swanlab: bool = False
    swanlab_project: str | None = None
    swanlab_workspace: str | None = None
    swanlab_run_name: str | None = None
    swanlab_mode: str = "local"
    swanlab_logdir: Path | None = None
    resume_from_checkpoint: Path | None = None


@dataclass(frozen=True)
class SpecProblem:
    """One invalid field, in the words the API returns (422 with field errors)."""

    field: str
    message: str


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def validate_spec(
    spec: TrainSpec,
    *,
    gpu_available: bool,
    dataset_kinds: Mapping[str, str],
    output_root: Path | None = None,
    templates: Collection[str] | None = None,
    quantization_available: bool = True,
) -> list[SpecProblem]:
    """Every problem of `spec` ([] when it can run): unknown choices, out-of-range numbers,
    combinations LLaMA-Factory or this machine cannot run, datasets whose kind does not fit
    the stage (`dataset_kinds`: name -> one of DATASET_KINDS), paths outside `output_root`."""
    problems: list[SpecProblem] = []

    def bad(name: str, message: str) -> None:
        problems.append(SpecProblem(name, message))

    def check_range(name: str, low: float, high: float, *, low_open: bool = False) -> None:
        value = getattr(spec, name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(name, "must be a number")
            return
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            low_text = f"greater than {low:g}" if low_open else f"at least {low:g}"
            bad(name, f"must be {low_text} and at most {high:g}")

    for item in fields(spec):
        value = getattr(spec, item.name)
        texts = value if isinstance(value, tuple) else (value,)
        if any(isinstance(text, str | Path) and "${" in str(text) for text in texts):
            bad(item.name, "must not contain '${'")  # the engine's yaml loader would expand it

    if spec.stage not in STAGES:
        bad("stage", f"must be one of {', '.join(STAGES)}")
    if spec.finetuning_type not in FINETUNING_TYPES:
        bad("finetuning_type", f"must be one of {', '.join(FINETUNING_TYPES)}")

    # the model
    base = spec.base_model.strip()
    if not base:
        bad("base_model", "is required")
    elif is_local_model(base):
        path = Path(base).expanduser()
        if not path.is_absolute():
            bad("base_model", "a local model must be given by its absolute path")
        elif not (path / "config.json").is_file():
            bad("base_model", f"{path} is not a model folder (no config.json)")
    elif not _HUB_ID_RE.match(base) or ".." in base:
        bad("base_model", "must be an absolute local path or a hub id like 'Qwen/Qwen2.5-0.5B'")
    if not _NAME_RE.match(spec.template):
        bad("template", "is required (a LLaMA-Factory template name such as 'qwen')")
    elif templates is not None and spec.template not in templates:
        bad("template", f"unknown template {spec.template!r}")

    # the data
    if not spec.datasets:
        bad("datasets", "choose at least one dataset")
    wanted = STAGE_DATASET_KIND.get(spec.stage)
    for name in spec.datasets:
        kind = dataset_kinds.get(name)
        kind = FORMAT_KINDS.get(kind, kind) if kind is not None else None
        if not _NAME_RE.match(name):
            bad("datasets", f"{name!r} is not a valid dataset name")
        elif kind is None:
            bad("datasets", f"dataset {name!r} is unknown")
        elif kind not in DATASET_KINDS:
            bad("datasets", f"dataset {name!r} has no usable format ({kind})")
        elif wanted is not None and kind != wanted:
            need = {
                "sft": "an instruction or conversation dataset",
                "text": "a plain-text dataset",
                "preference": "a preference dataset (chosen / rejected pairs)",
                "kto": "a KTO dataset (answers with a true/false kto_tag)",
            }[wanted]
            bad("datasets", f"stage {spec.stage} needs {need}; {name!r} is a {kind} dataset")
    if not spec.dataset_dir.is_absolute():
        bad("dataset_dir", "must be an absolute path")

    # where it goes
    if not spec.output_dir.is_absolute():
        bad("output_dir", "must be an absolute path")
    elif output_root is not None and not _inside(spec.output_dir, output_root):
        bad("output_dir", f"must be inside {output_root}")
    if spec.resume_from_checkpoint is not None:
        ckpt = spec.resume_from_checkpoint
        if not _inside(ckpt, spec.output_dir):
            bad("resume_from_checkpoint", "must be a checkpoint inside output_dir")
        elif not (ckpt / "trainer_state.json").is_file():
            bad("resume_from_checkpoint", f"{ckpt.name} is not a complete checkpoint")

    # the hardware
    if spec.finetuning_type == "qlora":
        if not gpu_available:
            bad("finetuning_type", "qlora needs a GPU (4/8-bit bitsandbytes); this host has none")
        elif not quantization_available:
            bad("finetuning_type", "qlora needs bitsandbytes in the training venv")
        if spec.quantization_bit not in (4, 8):
            bad("quantization_bit", "must be 4 or 8")
    if spec.bf16 and spec.fp16:
        bad("fp16", "choose bf16 or fp16, not both")
    if spec.bf16 and not gpu_available:
        bad("bf16", "bf16 needs a GPU here; this host trains on the CPU in float32")
    if spec.fp16 and not gpu_available:
        bad("fp16", "fp16 needs a GPU; this host trains on the CPU in float32")

    # the schedule
    if spec.num_train_epochs is None and spec.max_steps is None:
        bad("num_train_epochs", "give num_train_epochs or max_steps")
    elif spec.num_train_epochs is not None and spec.max_steps is not None:
        bad("max_steps", "give num_train_epochs or max_steps, not both")
    check_range("num_train_epochs", 0, 1000, low_open=True)
    check_range("max_steps", 1, 10_000_000)
    check_range("learning_rate", 0, 1, low_open=True)
    check_range("per_device_train_batch_size", 1, 1024)
    check_range("gradient_accumulation_steps", 1, 1024)
    check_range("cutoff_len", 8, 1_048_576)
    check_range("max_samples", 1, 100_000_000)
    check_range("warmup", 0, 10_000_000)
    if spec.warmup >= 1 and spec.warmup != int(spec.warmup):
        bad("warmup", "a value of 1 or more is a number of steps and must be whole")
    if spec.lr_scheduler_type not in SCHEDULERS:
        bad("lr_scheduler_type", f"must be one of {', '.join(SCHEDULERS)}")
    check_range("save_steps", 1, 10_000_000)
    check_range("save_total_limit", 1, 1000)
    check_range("logging_steps", 1, 10_000_000)
    check_range("val_size", 0, 0.5)
    check_range("eval_steps", 1, 10_000_000)
    check_range("seed", 0, 2**32 - 1)
    check_range("preprocessing_num_workers", 1, 256)
    for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "cutoff_len", "max_samples", "save_steps", "save_total_limit",
                 "logging_steps", "eval_steps", "seed", "lora_rank", "lora_alpha",
                 "freeze_trainable_layers", "preprocessing_num_workers"):  # fmt: skip
        value = getattr(spec, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            bad(name, "must be a whole number")

    # the method
    if spec.finetuning_type in ("lora", "qlora"):
        check_range("lora_rank", 1, 1024)
        check_range("lora_alpha", 1, 8192)
        check_range("lora_dropout", 0, 0.99)
        if spec.lora_target != "all" and not _LORA_TARGET_RE.match(spec.lora_target):
            bad("lora_target", "must be 'all' or module names separated by commas")
    if spec.finetuning_type == "freeze" and (
        spec.freeze_trainable_layers == 0 or abs(spec.freeze_trainable_layers) > 1000
    ):
        bad("freeze_trainable_layers", "must be a non-zero layer count (negative: the first n)")
    if spec.stage in ("dpo", "kto"):
        check_range("pref_beta", 0, 100, low_open=True)

    # monitoring
    if spec.use_swanlab:
        if spec.swanlab_mode not in SWANLAB_MODES:
            bad("swanlab_mode", f"must be one of {', '.join(SWANLAB_MODES)}")
        for name in ("swanlab_project", "swanlab_workspace"):
            value = getattr(spec, name)
            if value is not None and not _SWANLAB_NAME_RE.match(value):
                bad(name, "use 1-100 letters, digits, '_', '-', '.' or '+'")
        if spec.swanlab_run_name is not None and not 0 < len(spec.swanlab_run_name) <= 100:
            bad("swanlab_run_name", "must be 1-100 characters")
        if spec.swanlab_mode == "local" and spec.swanlab_logdir is None:
            bad("swanlab_logdir", "local mode needs a log folder (the dashboard reads it)")
        elif spec.swanlab_logdir is not None and not spec.swanlab_logdir.is_absolute():
            bad("swanlab_logdir", "must be an absolute path")
    return problems


def train_args(spec: TrainSpec) -> dict[str, Any]:
    """The LLaMA-Factory arguments of `spec` (what render_train_yaml writes)."""
    qlora = spec.finetuning_type == "qlora"
    args: dict[str, Any] = {
        "model_name_or_path": str(Path(spec.base_model).expanduser())
        if is_local_model(spec.base_model)
        else spec.base_model,
        "trust_remote_code": spec.trust_remote_code,
        "stage": spec.stage,
        "do_train": True,
        "finetuning_type": "lora" if qlora else spec.finetuning_type,
    }
    if qlora:
        args["quantization_bit"] = spec.quantization_bit
        args["quantization_method"] = "bnb"
    if spec.finetuning_type in ("lora", "qlora"):
        args["lora_rank"] = spec.lora_rank
        if spec.lora_alpha is not None:
            args["lora_alpha"] = spec.lora_alpha
        args["lora_dropout"] = spec.lora_dropout
        args["lora_target"] = spec.lora_target
    if spec.finetuning_type == "freeze":
        args["freeze_trainable_layers"] = spec.freeze_trainable_layers
        args["freeze_trainable_modules"] = "all"
    if spec.stage == "dpo":
        args["pref_beta"] = spec.pref_beta
        args["pref_loss"] = "sigmoid"
    elif spec.stage == "kto":
        args["pref_beta"] = spec.pref_beta

    args.update(
        {
            "dataset_dir": str(spec.dataset_dir),
            "dataset": ",".join(spec.datasets),
            "template": spec.template,
            "cutoff_len": spec.cutoff_len,
            "overwrite_cache": True,
            "dataloader_num_workers": 0,  # no worker processes: SIGABRT reaches the only one
        }
    )
    if spec.max_samples is not None:
        args["max_samples"] = spec.max_samples
    if spec.preprocessing_num_workers is not None:
        args["preprocessing_num_workers"] = spec.preprocessing_num_workers

    args.update(
        {
            "output_dir": str(spec.output_dir),
            "logging_steps": spec.logging_steps,
            "save_steps": spec.save_steps,
            "plot_loss": True,
            # A fresh run replaces what a previous attempt left; a resumed one keeps its
            # trainer_log.jsonl (LLaMA-Factory deletes it when overwriting).
            "overwrite_output_dir": spec.resume_from_checkpoint is None,
            "report_to": "none",
            "per_device_train_batch_size": spec.per_device_train_batch_size,
            "gradient_accumulation_steps": spec.gradient_accumulation_steps,
            "learning_rate": float(spec.learning_rate),
            "lr_scheduler_type": spec.lr_scheduler_type,
            "warmup_steps": int(spec.warmup) if spec.warmup >= 1 else float(spec.warmup),
            "seed": spec.seed,
        }
    )
    if spec.save_total_limit is not None:
        args["save_total_limit"] = spec.save_total_limit
    if spec.max_steps is not None:
        args["max_steps"] = spec.max_steps
    else:
        args["num_train_epochs"] = float(spec.num_train_epochs or 0)
    if spec.bf16:
        args["bf16"] = True
    if spec.fp16:
        args["fp16"] = True
    if spec.val_size > 0:
        args["val_size"] = float(spec.val_size)
        args["per_device_eval_batch_size"] = spec.per_device_train_batch_size
        args["eval_strategy"] = "steps"
        args["eval_steps"] = spec.eval_steps or spec.save_steps
    if spec.resume_from_checkpoint is not None:
        args["resume_from_checkpoint"] = str(spec.resume_from_checkpoint)
    if spec.use_swanlab:
        args["use_swanlab"] = True
        args["swanlab_mode"] = spec.swanlab_mode
        for name in ("swanlab_project", "swanlab_workspace", "swanlab_run_name"):
            if getattr(spec, name) is not None:
                args[name] = getattr(spec, name)
        if spec.swanlab_logdir is not None:
            args["swanlab_logdir"] = str(spec.swanlab_logdir)
    return args


def _dump_yaml(args: Mapping[str, Any]) -> str:
    for key, value in args.items():
        if isinstance(value, str) and "${" in value:
            raise ValueError(f"{key} must not contain '${{'")
    return yaml.safe_dump(dict(args), sort_keys=False, allow_unicode=True, default_flow_style=False)


def render_train_yaml(spec: TrainSpec) -> str:
    """The yaml for `llamafactory-cli train` (validate_spec first). No secret is in it."""
    return _dump_yaml(train_args(spec))


def render_export_yaml(
    base_model: str,
    adapter_dir: Path,
    template: str,
    export_dir: Path,
    *,
    export_size_gb: int = 5,
    export_dtype: str = "auto",
    trust_remote_code: bool = False,
) -> str:
    """The yaml for `llamafactory-cli export`: merge the LoRA adapter into its base model and
    save the result (safetensors, shards of `export_size_gb`) in `export_dir`."""
    if export_dtype not in EXPORT_DTYPES:
        raise ValueError(f"export_dtype must be one of {', '.join(EXPORT_DTYPES)}")
    return _dump_yaml(
        {
            "model_name_or_path": str(Path(base_model).expanduser())
            if is_local_model(base_model)
            else base_model,
            "adapter_name_or_path": str(adapter_dir),
            "template": template,
            "finetuning_type": "lora",
            "trust_remote_code": trust_remote_code,
            "export_dir": str(export_dir),
            "export_size": export_size_gb,
            "export_device": "cpu",
            "export_legacy_format": False,
            "infer_dtype": export_dtype,
        }
    )


# ------------------------------------------------------------------------------ running


def _require_engine(bin_dir: Path | str | None) -> EngineStatus:
    status = engine_status(bin_dir)
    if not status.available:
        raise EngineUnavailable(status)
    return status


async def start_train(
    spec: TrainSpec,
    layout: JobLayout,
    *,
    bin_dir: Path | str | None = None,
    swanlab_api_key: str | None = None,
    hf_hub_cache: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    nice: int = DEFAULT_NICE,
    cpu_threads: int | None = None,
) -> ProcessHandle:
    """Write layout.train_yaml and start `llamafactory-cli train` on it (log: layout.train_log,
    appended on every attempt). `extra_env` adds variables (e.g. SWANLAB_API_HOST);
    `cpu_threads` see engine_env. Raises EngineUnavailable when the engine is missing."""
    status = _require_engine(bin_dir)
    for folder in (layout.root, layout.hf_home, layout.mpl_dir, spec.output_dir):
        folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(layout.train_yaml, render_train_yaml(spec))
    env = engine_env(
        bin_dir=status.bin_dir,
        hf_home=layout.hf_home,
        mpl_dir=layout.mpl_dir,
        offline=is_local_model(spec.base_model),
        llamaboard_workdir=spec.output_dir,
        swanlab_api_key=swanlab_api_key,
        hf_hub_cache=hf_hub_cache,
        extra=extra_env,
        cpu_threads=cpu_threads,
    )
    return await start_process(
        [str(status.cli), "train", str(layout.train_yaml)],
        cwd=layout.root,
        env=env,
        log_path=layout.train_log,
        nice=nice,
    )


async def start_export(
    layout: JobLayout,
    *,
    base_model: str,
    adapter_dir: Path,
    template: str,
    export_dir: Path | None = None,
    bin_dir: Path | str | None = None,
    export_dtype: str = "auto",
    hf_hub_cache: Path | None = None,
    nice: int = DEFAULT_NICE,
    cpu_threads: int | None = None,
) -> ProcessHandle:
    """Write layout.export_yaml and start `llamafactory-cli export` (merge the adapter into the
    base model) into `export_dir` (default layout.export_dir); log: layout.export_log."""
    status = _require_engine(bin_dir)
    target = export_dir or layout.export_dir
    for folder in (layout.root, layout.hf_home, layout.mpl_dir):
        folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(
        layout.export_yaml,
        render_export_yaml(base_model, adapter_dir, template, target, export_dtype=export_dtype),
    )
    env = engine_env(
        bin_dir=status.bin_dir,
        hf_home=layout.hf_home,
        mpl_dir=layout.mpl_dir,
        offline=is_local_model(base_model),
        hf_hub_cache=hf_hub_cache,
        cpu_threads=cpu_threads,
    )
    return await start_process(
        [str(status.cli), "export", str(layout.export_yaml)],
        cwd=layout.root,
        env=env,
        log_path=layout.export_log,
        nice=nice,
    )


async def stop(handle: ProcessHandle, *, grace_s: float = 6.0) -> StopResult:
    """Cancel a run: SIGABRT to the engine (stop at the next step, save, exit 0), then SIGTERM
    and SIGKILL to its process group, gone within 10 s. A re-attached handle is checked by its
    start time first, so a reused pid is never signalled."""
    return await terminate_group(handle.pgid, grace_s, leader_start_time=handle.start_time)


def failure_reason(exit_code: int | None, log_path: Path, *, lines: int = 20) -> str:
    """'exit code N' (or how it died) followed by the last lines of the log."""
    if exit_code is None:
        head = "the process ended without an exit code (killed)"
    elif exit_code < 0:
        head = f"killed by signal {-exit_code}"
    else:
        head = f"exit code {exit_code}"
    last = [line for line in tail(log_path, lines * 2) if line.strip()][-lines:]
    return "\n".join([head, *last]) if last else head


__all__ = [
    "DATASET_KINDS",
    "FINETUNING_TYPES",
    "INSTALL_HINT",
    "SCHEDULERS",
    "STAGES",
    "EngineStatus",
    "EngineUnavailable",
    "JobLayout",
    "SpecProblem",
    "TrainSpec",
    "detect_gpus",
    "engine_env",
    "engine_status",
    "failure_reason",
    "is_local_model",
    "job_layout",
    "list_templates",
    "render_export_yaml",
    "render_train_yaml",
    "resolve_bin_dir",
    "start_export",
    "start_train",
    "stop",
    "train_args",
    "validate_spec",
    "write_dataset_info",
]
