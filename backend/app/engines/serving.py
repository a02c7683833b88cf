"""Driver for the serving engines: vLLM (`vllm serve`, GPU hosts) and LLaMA-Factory's OpenAI-style
API (`llamafactory-cli api`, HuggingFace backend on the CPU, or its vLLM backend on a GPU). A
serve spec -> validated command line / yaml + environment, the runtime folder, and starting,
probing and stopping the server as a supervised process group (`process.start_process`, the same
runner, log and exit file as training).

Plain arguments in, plain dataclasses out: no FastAPI, no ORM (DESIGN principle 5). The runtimes
layer keeps the state (ProcessHandle fields, port) in the database and calls back in here.

Engine behaviours this relies on (read in vLLM's source and LLaMA-Factory 0.9.5's installed
source; the LLaMA-Factory ones are checked by tests/engines/test_serving.py):
- The API key never goes on argv (`ps` shows argv to every local user): vLLM reads VLLM_API_KEY
  (vllm/envs.py) like `--api-key`; LLaMA-Factory's api reads API_KEY and, when it is empty, serves
  without any authentication, so an empty key is refused here.
- `vllm serve MODEL --lora-modules NAME=PATH` lists the adapter as NAME in /v1/models next to the
  base model's `--served-model-name`. vLLM splits `name=path` at '=' and reads an item holding
  ',' as JSON, so validation refuses an adapter path with either. `--max-lora-rank` defaults to
  16 and accepts only 1, 8, 16, 32, 64, 128, 256, 320 or 512: it is derived from the adapter.
- LLaMA-Factory's api loads the model first and binds its port afterwards, so a port in use fails
  only after the load (uvicorn exits 3); vLLM's api_server creates its socket before loading.
  Both log "address already in use" (serving_failure_reason says so in words).
- LLaMA-Factory's api logs every request body (the prompts) unless API_VERBOSE=0, which is set.
- LLaMA-Factory's vLLM backend (0.9.5 pins vllm >=0.4.3,<=0.11.0) takes vllm_maxlen,
  vllm_gpu_util, vllm_enforce_eager, vllm_max_lora_rank and vllm_config (a JSON string merged
  into vLLM's engine arguments; its tensor_parallel_size defaults to every visible GPU).
- Both servers stop cleanly on SIGTERM (uvicorn's graceful shutdown; it then re-raises the
  signal, so a clean stop records exit code -15); SIGABRT is for LLaMA-Factory's trainer only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from app.engines.llamafactory import (
    INSTALL_HINT,
    EngineStatus,
    EngineUnavailable,
    SpecProblem,
    _dump_yaml,
    _write_atomic,
    detect_gpus,
    engine_env,
    engine_status,
    failure_reason,
    is_local_model,
)
from app.engines.process import (
    ProcessHandle,
    StopResult,
    is_alive,
    start_process,
    tail,
    terminate_group,
)

ENGINES = ("vllm", "llamafactory")
LLAMAFACTORY_BACKENDS = ("huggingface", "vllm")
DTYPES = ("auto", "float16", "bfloat16", "float32")
VLLM_CLI = "vllm"
VLLM_INSTALL_HINT = (
    "install vLLM in its own virtualenv on a host with an NVIDIA GPU (`pip install vllm`) and set "
    "VLLM_BIN to its bin/vllm, or put `vllm` on PATH"
)
LLAMAFACTORY_VLLM_HINT = (
    "install vLLM into the training venv (LLaMA-Factory 0.9.5 supports vllm >=0.4.3,<=0.11.0) "
    "on a host with an NVIDIA GPU"
)
NO_GPU = "vllm needs an NVIDIA GPU; this host has none"
# Serving is latency-sensitive (a person waits for every token), training is throughput work
# that runs at nice 19. 5 keeps a loaded server well ahead of any training run on the same CPUs
# (scheduler weight 335 against 15) while the platform's own API server, at 0, stays responsive:
# it relays every request and stream to the engine, so starving it would slow serving too.
SERVE_NICE = 5
STOP_GRACE_S = 6.0  # SIGTERM to the server, then SIGTERM to the group, SIGKILL: all within 10 s
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's accepted --max-lora-rank values
BASE_SUFFIX = "-base"  # with an adapter, vLLM serves the bare base model as <name>-base

_SERVED_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?$")
_TEMPLATE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable ASCII, no spaces: an HTTP header value


# ------------------------------------------------------------------------------ the spec


@dataclass(frozen=True, kw_only=True)
class ServeSpec:
    """One model server: what to serve, with which engine, where. `api_key` is required (the
    server refuses requests without it) and is kept out of repr, argv and the yaml."""

    name: str  # the served model name (`model` in requests)
    model: str  # the base model: an absolute local path or a hub id
    port: int
    api_key: str = field(repr=False)
    adapter: Path | None = None  # a LoRA adapter folder (adapter_config.json)
    template: str | None = None  # LLaMA-Factory chat template (engine llamafactory)
    engine: str = "llamafactory"  # one of ENGINES
    backend: str = "huggingface"  # LLaMA-Factory's infer_backend, one of LLAMAFACTORY_BACKENDS
    engine_args: Mapping[str, Any] = field(default_factory=dict)  # see ENGINE_ARGS
    host: str = "127.0.0.1"

    @property
    def uses_vllm(self) -> bool:
        """Whether vLLM runs the model (directly, or as LLaMA-Factory's backend)."""
        return self.engine == "vllm" or (self.engine == "llamafactory" and self.backend == "vllm")

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL clients use (`.../v1`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def served_names(self) -> tuple[str, ...]:
        """What /v1/models lists once the server is up."""
        if self.engine == "vllm" and self.adapter is not None:
            return (self.name, self.name + BASE_SUFFIX)
        return (self.name,)


@dataclass(frozen=True)
class EngineArg:
    """One accepted `engine_args` key: its type, range and where it applies."""

    kind: type  # bool, int, float or str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    engines: tuple[str, ...] = ("vllm", "llamafactory+vllm", "llamafactory+huggingface")


ENGINE_ARGS: dict[str, EngineArg] = {
    "gpu_memory_utilization": EngineArg(
        float, 0, 1, low_open=True, engines=("vllm", "llamafactory+vllm")
    ),
    "max_model_len": EngineArg(int, 16, 16_777_216, engines=("vllm", "llamafactory+vllm")),
    "tensor_parallel_size": EngineArg(int, 1, 64, engines=("vllm", "llamafactory+vllm")),
    "dtype": EngineArg(str, choices=DTYPES),
    "max_loras": EngineArg(int, 1, 256, engines=("vllm",)),
    "trust_remote_code": EngineArg(bool),
    "enforce_eager": EngineArg(bool, engines=("vllm", "llamafactory+vllm")),
}


def engine_key(engine: str, backend: str = "huggingface") -> str:
    """'vllm', 'llamafactory+huggingface' or 'llamafactory+vllm' (ENGINE_ARGS[...].engines)."""
    return engine if engine != "llamafactory" else f"llamafactory+{backend}"


def engine_args_for(engine: str, backend: str = "huggingface") -> tuple[str, ...]:
    """The engine_args keys that apply to `engine` (and LLaMA-Factory's `backend`): what a form
    shows. Others are refused by validate_serve_spec rather than silently ignored."""
    key = engine_key(engine, backend)
    return tuple(name for name, arg in ENGINE_ARGS.items() if key in arg.engines)


def adapter_rank(adapter: Path) -> int | None:
    """The largest LoRA rank in adapter/adapter_config.json (`r` and any `rank_pattern`), or None
    when it cannot be read."""
    try:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    ranks = [config.get("r")]
    pattern = config.get("rank_pattern")
    if isinstance(pattern, dict):
        ranks.extend(pattern.values())
    found = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool) and r > 0]
    return max(found) if found else None


def max_lora_rank(adapter: Path) -> int:
    """vLLM's --max-lora-rank for `adapter`: the smallest accepted value that holds its rank."""
    rank = adapter_rank(adapter) or MAX_LORA_RANKS[2]
    for allowed in MAX_LORA_RANKS:
        if allowed >= rank:
            return allowed
    return MAX_LORA_RANKS[-1]


def _model_arg(model: str) -> str:
    return str(Path(model).expanduser()) if is_local_model(model) else model


def validate_serve_spec(
    spec: ServeSpec,
    *,
    gpu_available: bool,
    gpu_count: int | None = None,
    templates: Collection[str] | None = None,
) -> list[SpecProblem]:
    """Every problem of `spec` ([] when it can run here): unknown choices, bad names, model or
    adapter folders that are not what they claim, engine_args of the wrong type, out of range,
    unknown or not applying to the engine, and vLLM on a host without a GPU (`gpu_available`, from
    detect_gpus() at the caller; `gpu_count` also bounds tensor_parallel_size)."""
    problems: list[SpecProblem] = []

    def bad(name: str, message: str) -> None:
        problems.append(SpecProblem(name, message))

    for name in ("name", "model", "template", "adapter", "host"):
        value = getattr(spec, name)
        if value is not None and "${" in str(value):
            bad(name, "must not contain '${'")  # LLaMA-Factory's yaml loader would expand it

    if not _SERVED_NAME_RE.match(spec.name):
        bad("name", "use 1-96 letters, digits, '_', '-' or '.', starting with a letter or digit")

    if spec.engine not in ENGINES:
        bad("engine", f"must be one of {', '.join(ENGINES)}")
    if spec.backend not in LLAMAFACTORY_BACKENDS:
        bad("backend", f"must be one of {', '.join(LLAMAFACTORY_BACKENDS)}")
    elif spec.engine == "vllm" and spec.backend != "huggingface":
        bad("backend", "only applies to the llamafactory engine")
    if spec.uses_vllm and spec.engine in ENGINES and not gpu_available:
        bad("engine" if spec.engine == "vllm" else "backend", NO_GPU)

    # the model
    model = spec.model
    if not model.strip():
        bad("model", "is required")
    elif is_local_model(model):
        path = Path(model).expanduser()
        if not path.is_absolute():
            bad("model", "a local model must be given by its absolute path")
        elif not (path / "config.json").is_file():
            bad("model", f"{path} is not a model folder (no config.json)")
    elif not _HUB_ID_RE.match(model) or ".." in model:
        bad("model", "must be an absolute local path or a hub id like 'Qwen/Qwen2.5-0.5B'")

    if spec.adapter is not None:
        if not spec.adapter.is_absolute():
            bad("adapter", "must be an absolute path")
        elif not (spec.adapter / "adapter_config.json").is_file():
            bad("adapter", f"{spec.adapter} is not a LoRA adapter folder (no adapter_config.json)")
        elif spec.uses_vllm and (adapter_rank(spec.adapter) or 0) > MAX_LORA_RANKS[-1]:
            bad("adapter", f"vLLM serves LoRA ranks up to {MAX_LORA_RANKS[-1]}")
        elif spec.engine == "vllm" and ("," in str(spec.adapter) or "=" in str(spec.adapter)):
            bad("adapter", "the adapter's path must not contain ',' or '='")  # vLLM's name=path

    if spec.engine == "llamafactory":
        if spec.template is None or not _TEMPLATE_RE.match(spec.template):
            bad("template", "is required (a LLaMA-Factory template name such as 'qwen')")
        elif templates is not None and spec.template not in templates:
            bad("template", f"unknown template {spec.template!r}")

    # where it listens, and the key
    try:
        ipaddress.ip_address(spec.host)
    except ValueError:
        bad("host", "must be an IP address such as 127.0.0.1")
    if isinstance(spec.port, bool) or not isinstance(spec.port, int):
        bad("port", "must be a whole number")
    elif not 1024 <= spec.port <= 65535:
        bad("port", "must be between 1024 and 65535")
    if not isinstance(spec.api_key, str) or not _KEY_RE.match(spec.api_key):
        bad("api_key", "is required: 1-256 printable characters without spaces")

    # the engine arguments
    key = engine_key(spec.engine, spec.backend)
    for name, value in spec.engine_args.items():
        field_name = f"engine_args.{name}"
        arg = ENGINE_ARGS.get(name)
        if arg is None:
            bad(field_name, f"unknown engine argument; use {', '.join(ENGINE_ARGS)}")
            continue
        if spec.engine in ENGINES and key not in arg.engines:
            where = " or ".join(e.replace("+", " with backend ") for e in arg.engines)
            bad(field_name, f"applies only to {where}")
            continue
        problem = _check_arg(arg, value)
        if problem:
            bad(field_name, problem)
    tp = spec.engine_args.get("tensor_parallel_size")
    if (
        isinstance(tp, int)
        and not isinstance(tp, bool)
        and gpu_count is not None
        and gpu_available
        and tp > gpu_count
    ):
        bad("engine_args.tensor_parallel_size", f"this host has {gpu_count} GPU(s)")
    if "max_loras" in spec.engine_args and spec.adapter is None and spec.engine == "vllm":
        bad("engine_args.max_loras", "applies only when an adapter is served")
    return problems


def _check_arg(arg: EngineArg, value: object) -> str | None:
    if arg.kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if arg.kind is str:
        if not isinstance(value, str) or value not in arg.choices:
            return f"must be one of {', '.join(arg.choices)}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if arg.kind is int and not isinstance(value, int):
        return "must be a whole number"
    low, high = arg.low, arg.high
    assert low is not None and high is not None
    if not math.isfinite(value) or value < low or value > high or (arg.low_open and value == low):
        low_text = f"greater than {low:g}" if arg.low_open else f"at least {low:g}"
        return f"must be {low_text} and at most {high:g}"
    return None


# ------------------------------------------------------------------------------ discovery


@dataclass(frozen=True)
class ServingEngineStatus:
    """Whether a serving engine can run here, and if not, why and what to do."""

    engine: str  # 'vllm', 'llamafactory' (or 'llamafactory+vllm' for its vLLM backend)
    available: bool
    missing: str | None  # why it is unavailable, in words
    install_hint: str
    executable: Path | None = None  # vllm, or llamafactory-cli
    version: str | None = None
    gpus: tuple[str, ...] = ()


class ServingEngineUnavailable(EngineUnavailable):
    """The serving engine cannot run; `serving` says why and what to do. An EngineUnavailable,
    so callers that handle the training engine's handle this one too (`status` then carries
    the same `missing` and `install_hint`)."""

    def __init__(self, status: ServingEngineStatus) -> None:
        bin_dir = status.executable.parent if status.executable is not None else Path()
        super().__init__(
            EngineStatus(False, bin_dir, status.version, status.missing, status.install_hint)
        )
        self.serving = status


def resolve_vllm_bin(vllm_bin: Path | str | None = None) -> Path | None:
    """The vllm executable: `vllm_bin` (the executable or its bin/ folder; the caller passes
    settings.VLLM_BIN), else `vllm` on PATH; None when there is none that can run."""
    if vllm_bin is not None:
        path = Path(vllm_bin).expanduser()
        candidate = path / VLLM_CLI if path.is_dir() else path
        return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None
    found = shutil.which(VLLM_CLI)
    return Path(found) if found else None


# `vllm --version` imports torch and vllm (tens of seconds): ask the venv's python instead.
_VLLM_PROBE = "import importlib.metadata as m; print(m.version('vllm'))"
_vllm_version_cache: dict[Path, tuple[int, str | None]] = {}
_vllm_lock = threading.Lock()


def _vllm_version(executable: Path) -> str | None:
    python = executable.parent / "python"
    try:
        mtime = executable.stat().st_mtime_ns
    except OSError:
        return None
    with _vllm_lock:
        cached = _vllm_version_cache.get(executable)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        version = None
        if python.is_file():
            try:
                done = subprocess.run(  # noqa: S603  (our own fixed probe, no shell)
                    [str(python), "-I", "-c", _VLLM_PROBE],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired):
                done = None
            if done is not None and done.returncode == 0 and done.stdout.strip():
                version = done.stdout.strip().splitlines()[-1]
        _vllm_version_cache[executable] = (mtime, version)
        return version


def _venv_has_vllm(bin_dir: Path) -> bool:
    return any(bin_dir.parent.glob("lib/python3*/site-packages/vllm/__init__.py"))


def serving_status(
    engine: str,
    *,
    backend: str = "huggingface",
    vllm_bin: Path | str | None = None,
    bin_dir: Path | str | None = None,
    gpus: Sequence[str] | None = None,
) -> ServingEngineStatus:
    """Whether `engine` can serve here. llamafactory: the training venv (engine_status); with
    `backend` vllm also vLLM inside it and a GPU. vllm: the executable (`vllm_bin`, the caller's
    settings.VLLM_BIN, else `vllm` on PATH) and an NVIDIA GPU. `gpus` defaults to detect_gpus()."""
    found = tuple(detect_gpus() if gpus is None else gpus)
    if engine == "llamafactory":
        status = engine_status(bin_dir)
        name = engine_key(engine, backend) if backend == "vllm" else engine
        if not status.available:
            return ServingEngineStatus(name, False, status.missing, status.install_hint, gpus=found)
        version = status.version
        common: dict[str, Any] = {"executable": status.cli, "version": version, "gpus": found}
        if backend == "vllm":
            if not found:
                return ServingEngineStatus(name, False, NO_GPU, LLAMAFACTORY_VLLM_HINT, **common)
            if not _venv_has_vllm(status.bin_dir):
                missing = f"vllm is not installed in {status.bin_dir.parent}"
                return ServingEngineStatus(name, False, missing, LLAMAFACTORY_VLLM_HINT, **common)
        elif backend != "huggingface":
            missing = f"unknown backend {backend!r}"
            return ServingEngineStatus(name, False, missing, INSTALL_HINT, **common)
        return ServingEngineStatus(name, True, None, INSTALL_HINT, **common)
    if engine == "vllm":
        executable = resolve_vllm_bin(vllm_bin)
        if executable is None:
            where = f"at {vllm_bin}" if vllm_bin is not None else "on PATH"
            return ServingEngineStatus(
                engine, False, f"vllm not found {where}", VLLM_INSTALL_HINT, gpus=found
            )
        version = _vllm_version(executable)
        if not found:
            return ServingEngineStatus(
                engine, False, NO_GPU, VLLM_INSTALL_HINT, executable, version, found
            )
        return ServingEngineStatus(
            engine, True, None, VLLM_INSTALL_HINT, executable, version, found
        )
    return ServingEngineStatus(
        engine, False, f"unknown engine {engine!r}; use {', '.join(ENGINES)}", INSTALL_HINT
    )


# ---------------------------------------------------------------------- the runtime folder


@dataclass(frozen=True)
class RuntimeLayout:
    """Where everything of one model runtime lives, under SERVING_DIR/<runtime-id>/."""

    root: Path

    @property
    def serve_yaml(self) -> Path:
        return self.root / "serve.yaml"  # llamafactory-cli api's arguments

    @property
    def serve_log(self) -> Path:
        return self.root / "serve.log"

    @property
    def log(self) -> Path:
        return self.serve_log

    @property
    def exit_path(self) -> Path:
        return self.root / "serve.exit.json"  # written by the runner when the server ends

    @property
    def hf_home(self) -> Path:
        return self.root / "hf"

    @property
    def mpl_dir(self) -> Path:
        return self.root / "mpl"


def runtime_layout(runtime_id: int | str, root: Path) -> RuntimeLayout:
    """The layout of runtime `runtime_id` under `root` (the caller passes settings.SERVING_DIR)."""
    name = str(runtime_id)
    if not _TEMPLATE_RE.match(name) or name in (".", ".."):
        raise ValueError(f"not a usable folder name: {name!r}")
    return RuntimeLayout(root / name)


# ---------------------------------------------------------------------- command and config


def vllm_command(spec: ServeSpec, vllm_bin: Path) -> list[str]:
    """`vllm serve` for `spec` (validate_serve_spec first). With an adapter, the adapter is
    served under `spec.name` (requests for it use the adapter) and the bare base model under
    `<name>-base`. The API key is not in it: vLLM reads VLLM_API_KEY (see vllm_env)."""
    args = spec.engine_args
    served = spec.name + BASE_SUFFIX if spec.adapter is not None else spec.name
    argv = [
        str(vllm_bin),
        "serve",
        _model_arg(spec.model),
        "--served-model-name",
        served,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
    ]
    if "gpu_memory_utilization" in args:
        argv += ["--gpu-memory-utilization", f"{float(args['gpu_memory_utilization']):g}"]
    if "max_model_len" in args:
        argv += ["--max-model-len", str(int(args["max_model_len"]))]
    if "tensor_parallel_size" in args:
        argv += ["--tensor-parallel-size", str(int(args["tensor_parallel_size"]))]
    if "dtype" in args:
        argv += ["--dtype", str(args["dtype"])]
    if args.get("trust_remote_code"):
        argv.append("--trust-remote-code")
    if args.get("enforce_eager"):
        argv.append("--enforce-eager")
    if spec.adapter is not None:
        argv += [
            "--enable-lora",
            "--lora-modules",
            f"{spec.name}={spec.adapter}",
            "--max-loras",
            str(int(args.get("max_loras", 1))),
            "--max-lora-rank",
            str(max_lora_rank(spec.adapter)),
        ]
    return argv


def llamafactory_api_args(spec: ServeSpec) -> dict[str, Any]:
    """The LLaMA-Factory arguments of `spec` (what llamafactory_api_yaml writes)."""
    args = spec.engine_args
    out: dict[str, Any] = {"model_name_or_path": _model_arg(spec.model)}
    if spec.adapter is not None:
        out["adapter_name_or_path"] = str(spec.adapter)
        out["finetuning_type"] = "lora"
    out["template"] = spec.template
    out["infer_backend"] = spec.backend
    out["trust_remote_code"] = bool(args.get("trust_remote_code", False))
    if "dtype" in args:
        out["infer_dtype"] = args["dtype"]
    if spec.backend == "vllm":
        if "max_model_len" in args:
            out["vllm_maxlen"] = int(args["max_model_len"])
        if "gpu_memory_utilization" in args:
            out["vllm_gpu_util"] = float(args["gpu_memory_utilization"])
        out["vllm_enforce_eager"] = bool(args.get("enforce_eager", False))
        if spec.adapter is not None:
            out["vllm_max_lora_rank"] = max_lora_rank(spec.adapter)
        if "tensor_parallel_size" in args:
            # Merged into vLLM's engine arguments; without it LLaMA-Factory uses every GPU.
            out["vllm_config"] = json.dumps(
                {"tensor_parallel_size": int(args["tensor_parallel_size"])}
            )
    return out


def llamafactory_api_yaml(spec: ServeSpec) -> str:
    """The yaml for `llamafactory-cli api` (validate_serve_spec first). No secret is in it."""
    return _dump_yaml(llamafactory_api_args(spec))


def llamafactory_api_env(
    spec: ServeSpec,
    layout: RuntimeLayout,
    *,
    bin_dir: Path,
    gpu_available: bool,
    hf_hub_cache: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of `llamafactory-cli api`: engine_env (caches in the runtime
    folder, offline for a local model, none of the server's settings) plus API_HOST, API_PORT,
    API_MODEL_NAME and API_KEY, request logging off (API_VERBOSE=0: prompts stay out of the log);
    without a GPU the HuggingFace backend is kept on the CPU."""
    extra = {
        "API_HOST": spec.host,
        "API_PORT": str(spec.port),
        "API_MODEL_NAME": spec.name,
        "API_KEY": spec.api_key,
        # Without this, every request body (the users' prompts, base64 images included) is
        # written to serve.log at INFO level.
        "API_VERBOSE": "0",
    }
    if not gpu_available and spec.backend == "huggingface":
        extra["CUDA_VISIBLE_DEVICES"] = ""
    env = engine_env(
        bin_dir=bin_dir,
        hf_home=layout.hf_home,
        mpl_dir=layout.mpl_dir,
        offline=is_local_model(spec.model),
        hf_hub_cache=hf_hub_cache,
        base=base,
        extra=extra,
    )
    env.pop("VLLM_API_KEY", None)
    env.pop("FASTAPI_ROOT_PATH", None)  # would move LLaMA-Factory's routes away from /v1
    return env


def vllm_env(
    spec: ServeSpec,
    layout: RuntimeLayout,
    *,
    vllm_bin: Path,
    hf_hub_cache: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of `vllm serve`: engine_env (the vllm venv's bin/ first on PATH,
    caches in the runtime folder, offline for a local model) plus VLLM_API_KEY, and no usage
    statistics sent anywhere. vLLM's compile cache (VLLM_CACHE_ROOT) stays where it is, shared
    between runtimes: rebuilding it on every load would add minutes to each start."""
    env = engine_env(
        bin_dir=vllm_bin.parent,
        hf_home=layout.hf_home,
        mpl_dir=layout.mpl_dir,
        offline=is_local_model(spec.model),
        hf_hub_cache=hf_hub_cache,
        base=base,
        extra={
            "VLLM_API_KEY": spec.api_key,
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        },
    )
    env.pop("API_KEY", None)
    return env


# ------------------------------------------------------------------------------- running


async def start_server(
    spec: ServeSpec,
    layout: RuntimeLayout,
    *,
    bin_dir: Path | str | None = None,
    vllm_bin: Path | str | None = None,
    hf_hub_cache: Path | None = None,
    gpus: Sequence[str] | None = None,
    nice: int = SERVE_NICE,
) -> ProcessHandle:
    """Start the server of `spec` (validate_serve_spec first) as a supervised process group:
    log layout.serve_log (appended on every start), exit code in layout.exit_path. Raises
    ServingEngineUnavailable when the engine is missing, ValueError without an API key. Returns
    at once; the model loads in the background (wait_ready / probe_ready)."""
    if not spec.api_key:
        raise ValueError("api_key is required: the server would answer anyone without it")
    found = tuple(detect_gpus() if gpus is None else gpus)
    status = serving_status(
        spec.engine, backend=spec.backend, vllm_bin=vllm_bin, bin_dir=bin_dir, gpus=found
    )
    if not status.available or status.executable is None:
        raise ServingEngineUnavailable(status)
    for folder in (layout.root, layout.hf_home, layout.mpl_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if spec.engine == "vllm":
        argv = vllm_command(spec, status.executable)
        env = vllm_env(spec, layout, vllm_bin=status.executable, hf_hub_cache=hf_hub_cache)
    else:
        _write_atomic(layout.serve_yaml, llamafactory_api_yaml(spec))
        argv = [str(status.executable), "api", str(layout.serve_yaml)]
        env = llamafactory_api_env(
            spec,
            layout,
            bin_dir=status.executable.parent,
            gpu_available=bool(found),
            hf_hub_cache=hf_hub_cache,
        )
    return await start_process(
        argv,
        cwd=layout.root,
        env=env,
        log_path=layout.serve_log,
        exit_path=layout.exit_path,
        nice=nice,
    )


async def probe_ready(
    base_url: str, api_key: str, name: str | None = None, *, timeout_s: float = 2.0
) -> bool:
    """True when GET {base_url}/models with the key answers 200 and lists `name` (any model
    when None) in data[].id. Never raises: a server still loading just is not ready."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            response = await client.get(
                f"{base_url.rstrip('/')}/models",
                headers={"Authorization": f"Bearer {api_key}"},
            )
        if response.status_code != 200:
            return False
        data = response.json().get("data")
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    if not isinstance(data, list):
        return False
    ids = {item.get("id") for item in data if isinstance(item, dict)}
    return bool(ids) if name is None else name in ids


ReadyOutcome = Literal["ready", "exited", "timeout"]


async def wait_ready(
    handle: ProcessHandle,
    spec: ServeSpec,
    *,
    timeout_s: float,
    poll_s: float = 1.0,
) -> ReadyOutcome:
    """Poll until the server answers /models with `spec.name` ('ready'), its process ends
    ('exited': see serving_failure_reason) or `timeout_s` passes ('timeout')."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await probe_ready(spec.base_url, spec.api_key, name=spec.name):
            return "ready"
        if not is_alive(handle.pid, handle.start_time):
            return "exited"
        if time.monotonic() >= deadline:
            return "timeout"
        await asyncio.sleep(poll_s)


async def stop_server(handle: ProcessHandle, *, grace_s: float = STOP_GRACE_S) -> StopResult:
    """Unload: SIGTERM to the server (both engines shut down cleanly on it), then SIGTERM and
    SIGKILL to its whole process group (vLLM's engine-core and worker processes too), gone within
    10 s. A re-attached handle is checked by its start time first: a reused pid is left alone.
    uvicorn re-raises SIGTERM after its graceful shutdown, so a clean stop records exit code -15
    (signal 15), not 0."""
    return await terminate_group(
        handle.pgid,
        grace_s,
        leader_start_time=handle.start_time,
        first_signal=signal.SIGTERM,
    )


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on host:port now. SO_REUSEADDR as uvicorn sets it, so a
    port held only by connections closing down (TIME_WAIT) counts as free, as it is for them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def pick_free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (bind to port 0). Another process may still take it
    before the server binds; the server then exits with 'address already in use'."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


_FAILURE_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("address already in use",), "{port} is already in use"),
    (
        ("cuda out of memory", "outofmemoryerror", "no available memory for the cache blocks"),
        "out of GPU memory: lower gpu_memory_utilization or max_model_len, or serve a smaller "
        "model",
    ),
    (
        ("no cuda gpus are available", "found no nvidia driver", "failed to infer device type"),
        "no usable NVIDIA GPU",
    ),
)


def _last_run(log_path: Path, n: int = 400) -> list[str]:
    """The log lines of the latest start (serve.log is appended on every start)."""
    lines = tail(log_path, n)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("[modeltrain] ") and " start: " in lines[index]:
            return lines[index + 1 :]
    return lines


def serving_failure_reason(
    exit_code: int | None, log_path: Path, *, port: int | None = None, lines: int = 20
) -> str:
    """Why a server ended: 'exit code N' (or how it died), a plain-words cause when the latest
    start's log shows a known one (port in use, GPU memory, no GPU), then the last log lines."""
    reason = failure_reason(exit_code, log_path, lines=lines)
    text = "\n".join(_last_run(log_path)).lower()
    for needles, hint in _FAILURE_HINTS:
        if any(needle in text for needle in needles):
            cause = hint.format(port=f"port {port}" if port is not None else "the port")
            head, sep, rest = reason.partition("\n")
            return f"{head}: {cause}{sep}{rest}"
    return reason


__all__ = [
    "BASE_SUFFIX",
    "DTYPES",
    "ENGINES",
    "ENGINE_ARGS",
    "LLAMAFACTORY_BACKENDS",
    "SERVE_NICE",
    "EngineArg",
    "ReadyOutcome",
    "RuntimeLayout",
    "ServeSpec",
    "ServingEngineStatus",
    "ServingEngineUnavailable",
    "adapter_rank",
    "engine_args_for",
    "llamafactory_api_args",
    "llamafactory_api_env",
    "llamafactory_api_yaml",
    "max_lora_rank",
    "pick_free_port",
    "port_free",
    "probe_ready",
    "resolve_vllm_bin",
    "runtime_layout",
    "serving_failure_reason",
    "serving_status",
    "start_server",
    "stop_server",
    "validate_serve_spec",
    "vllm_command",
    "vllm_env",
    "wait_ready",
]
