"""The serving driver (app.engines.serving): vLLM command lines, LLaMA-Factory api yaml and
environments, spec validation, engine discovery, ports; then the real `llamafactory-cli api`
(LLaMA-Factory 0.9.5, HuggingFace backend, CPU) on the tiny Qwen2 model with a LoRA adapter made
here with peft: started, probed, streamed, refused without the key, stopped; a broken model, a
port already taken and a server killed from outside. vLLM itself needs a GPU: bench/gpu_smoke.sh.
The real-engine tests skip without the training venv (see conftest.py)."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.engines import (
    SERVE_NICE,
    EngineUnavailable,
    ProcessHandle,
    RuntimeLayout,
    ServeSpec,
    ServingEngineUnavailable,
    engine_args_for,
    is_alive,
    llamafactory_api_env,
    llamafactory_api_yaml,
    pick_free_port,
    port_free,
    probe_ready,
    read_exit_code,
    runtime_layout,
    serving_failure_reason,
    serving_status,
    start_server,
    stop_server,
    validate_serve_spec,
    vllm_command,
    vllm_env,
    wait,
    wait_ready,
)
from app.engines.process import _group_has_live_members
from app.engines.serving import NO_GPU
from tests.engine_fixtures import group_members, proc_file

KEY = "sk-serve-test-0123456789abcdef"
READY_TIMEOUT_S = 240.0  # importing torch + transformers on a loaded 2-core box is slow
EXIT_TIMEOUT_S = 240.0

# ---------------------------------------------------------------------------- helpers


def _model_dir(root: Path) -> Path:
    """A folder that passes the model checks (config.json), for command-line tests."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}", encoding="utf-8")
    return root


def _adapter_dir(root: Path, rank: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "adapter_config.json").write_text(json.dumps({"r": rank}), encoding="utf-8")
    return root


def _spec(model: Path | str, **changes: Any) -> ServeSpec:
    spec = ServeSpec(name="tiny", model=str(model), port=18123, api_key=KEY, template="default")
    return replace(spec, **changes)


def _fields(spec: ServeSpec, *, gpu: bool = True, **kw: Any) -> dict[str, str]:
    return {p.field: p.message for p in validate_serve_spec(spec, gpu_available=gpu, **kw)}


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------- vLLM command line


def test_vllm_command_with_every_engine_arg(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    args = {
        "gpu_memory_utilization": 0.85,
        "max_model_len": 4096,
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
        "trust_remote_code": True,
        "enforce_eager": True,
    }
    spec = _spec(model, engine="vllm", engine_args=args, template=None)
    assert _fields(spec, gpu_count=2) == {}
    vllm = Path("/opt/vllm/bin/vllm")
    assert vllm_command(spec, vllm) == [
        "/opt/vllm/bin/vllm",
        "serve",
        str(model),
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        "18123",
        "--gpu-memory-utilization",
        "0.85",
        "--max-model-len",
        "4096",
        "--tensor-parallel-size",
        "2",
        "--dtype",
        "bfloat16",
        "--trust-remote-code",
        "--enforce-eager",
    ]
    assert spec.served_names == ("tiny",)


def test_vllm_command_plain_and_false_flags(tmp_path: Path) -> None:
    spec = _spec("Qwen/Qwen2.5-0.5B-Instruct", engine="vllm", template=None)
    spec = replace(spec, engine_args={"trust_remote_code": False, "enforce_eager": False})
    assert _fields(spec) == {}
    assert vllm_command(spec, Path("vllm")) == [
        "vllm",
        "serve",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        "18123",
    ]


def test_vllm_command_with_adapter(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    adapter = _adapter_dir(tmp_path / "adapter", rank=24)
    spec = _spec(model, engine="vllm", adapter=adapter, engine_args={"max_loras": 2})
    assert _fields(spec) == {}
    argv = vllm_command(spec, Path("/v/bin/vllm"))
    # The adapter answers to the runtime's name; the bare base model to <name>-base.
    assert argv[argv.index("--served-model-name") + 1] == "tiny-base"
    assert argv[argv.index("--lora-modules") + 1] == f"tiny={adapter}"
    assert "--enable-lora" in argv
    assert argv[argv.index("--max-loras") + 1] == "2"
    assert argv[argv.index("--max-lora-rank") + 1] == "32"  # 24 rounded up to vLLM's choices
    assert spec.served_names == ("tiny", "tiny-base")
    default_loras = vllm_command(replace(spec, engine_args={}), Path("vllm"))
    assert default_loras[default_loras.index("--max-loras") + 1] == "1"


def test_vllm_key_is_in_the_environment_never_on_argv(tmp_path: Path) -> None:
    spec = _spec(_model_dir(tmp_path / "model"), engine="vllm")
    layout = RuntimeLayout(tmp_path / "rt")
    argv = vllm_command(spec, Path("/v/bin/vllm"))
    assert not any(KEY in part for part in argv)
    assert KEY not in repr(spec)
    base = {
        "PATH": "/usr/bin",
        "SECRET_KEY": "server-secret",
        "DATABASE_URL": "postgresql://u:p@db/x",
        "API_KEY": "someone-elses",
        "HOME": "/home/x",
    }
    env = vllm_env(spec, layout, vllm_bin=Path("/v/bin/vllm"), base=base)
    assert env["VLLM_API_KEY"] == KEY
    assert "API_KEY" not in env and "SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert env["PATH"].split(os.pathsep)[0] == "/v/bin"
    assert env["HF_HOME"] == str(layout.hf_home) and env["MPLCONFIGDIR"] == str(layout.mpl_dir)
    assert env["HF_HUB_OFFLINE"] == "1"  # a local model: nothing is downloaded
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"
    hub = replace(spec, model="Qwen/Qwen2.5-0.5B")
    assert "HF_HUB_OFFLINE" not in vllm_env(hub, layout, vllm_bin=Path("/v/vllm"), base={})


# ---------------------------------------------------------------- LLaMA-Factory api


def test_llamafactory_yaml_huggingface(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    adapter = _adapter_dir(tmp_path / "adapter")
    spec = _spec(model, adapter=adapter, engine_args={"dtype": "float32"})
    assert _fields(spec, gpu=False) == {}
    text = llamafactory_api_yaml(spec)
    assert KEY not in text
    assert yaml.safe_load(text) == {
        "model_name_or_path": str(model),
        "adapter_name_or_path": str(adapter),
        "finetuning_type": "lora",
        "template": "default",
        "infer_backend": "huggingface",
        "trust_remote_code": False,
        "infer_dtype": "float32",
    }
    plain = yaml.safe_load(llamafactory_api_yaml(replace(spec, adapter=None, engine_args={})))
    assert "adapter_name_or_path" not in plain and "finetuning_type" not in plain


def test_llamafactory_yaml_vllm_backend(tmp_path: Path) -> None:
    spec = _spec(
        _model_dir(tmp_path / "model"),
        backend="vllm",
        adapter=_adapter_dir(tmp_path / "adapter", rank=64),
        engine_args={
            "gpu_memory_utilization": 0.5,
            "max_model_len": 2048,
            "tensor_parallel_size": 2,
            "enforce_eager": True,
            "trust_remote_code": True,
        },
    )
    assert _fields(spec, gpu_count=2) == {}
    args = yaml.safe_load(llamafactory_api_yaml(spec))
    assert args["infer_backend"] == "vllm"
    assert args["vllm_maxlen"] == 2048
    assert args["vllm_gpu_util"] == 0.5
    assert args["vllm_enforce_eager"] is True
    assert args["vllm_max_lora_rank"] == 64
    assert json.loads(args["vllm_config"]) == {"tensor_parallel_size": 2}
    assert args["trust_remote_code"] is True


def _dataclass_fields(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
    return names


def test_llamafactory_yaml_keys_exist_in_the_installed_engine(
    engine_bin: Path, tmp_path: Path
) -> None:
    """Every key we write is an argument of the installed LLaMA-Factory (read from its source:
    a renamed key would otherwise only fail when a GPU host loads a model)."""
    hparams = next(engine_bin.parent.glob("lib/python3*/site-packages/llamafactory/hparams"))
    known: set[str] = set()
    for source in hparams.glob("*.py"):
        known |= _dataclass_fields(source)
    spec = _spec(
        _model_dir(tmp_path / "model"),
        backend="vllm",
        adapter=_adapter_dir(tmp_path / "adapter"),
        engine_args={
            "gpu_memory_utilization": 0.5,
            "max_model_len": 2048,
            "tensor_parallel_size": 1,
            "dtype": "auto",
            "enforce_eager": True,
            "trust_remote_code": False,
        },
    )
    written = set(yaml.safe_load(llamafactory_api_yaml(spec)))
    assert written <= known, written - known


def test_llamafactory_env(tmp_path: Path) -> None:
    spec = _spec(_model_dir(tmp_path / "model"))
    layout = runtime_layout(7, tmp_path / "serving")
    base = {"PATH": "/usr/bin", "SECRET_KEY": "s", "VLLM_API_KEY": "other", "HOME": "/h"}
    env = llamafactory_api_env(spec, layout, bin_dir=Path("/t/bin"), gpu_available=False, base=base)
    assert env["API_HOST"] == "127.0.0.1"
    assert env["API_PORT"] == "18123"
    assert env["API_MODEL_NAME"] == "tiny"
    assert env["API_KEY"] == KEY
    assert env["API_VERBOSE"] == "0"  # request bodies (prompts) stay out of serve.log
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # no GPU: keep the HuggingFace backend on the CPU
    assert env["HF_HOME"] == str(tmp_path / "serving" / "7" / "hf")
    assert env["MPLCONFIGDIR"] == str(tmp_path / "serving" / "7" / "mpl")
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["PATH"].startswith("/t/bin" + os.pathsep)
    assert "SECRET_KEY" not in env and "VLLM_API_KEY" not in env
    assert "LLAMABOARD_ENABLED" not in env
    gpu = llamafactory_api_env(spec, layout, bin_dir=Path("/t/bin"), gpu_available=True, base={})
    assert "CUDA_VISIBLE_DEVICES" not in gpu
    hub = llamafactory_api_env(
        replace(spec, model="Qwen/Qwen2.5-0.5B"),
        layout,
        bin_dir=Path("/t/bin"),
        gpu_available=False,
        base={},
    )
    assert "HF_HUB_OFFLINE" not in hub


def test_runtime_layout(tmp_path: Path) -> None:
    layout = runtime_layout("12", tmp_path)
    assert layout.root == tmp_path / "12"
    assert layout.serve_yaml == tmp_path / "12" / "serve.yaml"
    assert layout.serve_log == layout.log == tmp_path / "12" / "serve.log"
    assert layout.exit_path == tmp_path / "12" / "serve.exit.json"
    assert (layout.hf_home, layout.mpl_dir) == (tmp_path / "12" / "hf", tmp_path / "12" / "mpl")
    for bad in ("..", "a/b", "", "../x"):
        with pytest.raises(ValueError):
            runtime_layout(bad, tmp_path)


# --------------------------------------------------------------------------- validation


def test_vllm_needs_a_gpu(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    assert _fields(_spec(model, engine="vllm"), gpu=False) == {"engine": NO_GPU}
    assert _fields(_spec(model, backend="vllm"), gpu=False) == {"backend": NO_GPU}
    assert _fields(_spec(model), gpu=False) == {}  # HuggingFace backend: the CPU will do
    assert NO_GPU == "vllm needs an NVIDIA GPU; this host has none"


def test_model_and_adapter_paths(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "model" in _fields(_spec("relative/../path"))
    assert "absolute" in _fields(_spec("./model"))["model"]
    assert "config.json" in _fields(_spec(empty))["model"]
    assert "config.json" in _fields(_spec(tmp_path / "missing"))["model"]
    assert "model" in _fields(_spec(""))
    assert _fields(_spec("Qwen/Qwen2.5-0.5B")) == {}
    assert "adapter_config.json" in _fields(_spec(model, adapter=empty))["adapter"]
    assert "absolute" in _fields(_spec(model, adapter=Path("adapter")))["adapter"]
    big = _adapter_dir(tmp_path / "big", rank=1024)
    assert "512" in _fields(_spec(model, engine="vllm", adapter=big))["adapter"]
    comma = _adapter_dir(tmp_path / "a,b")
    assert "','" in _fields(_spec(model, engine="vllm", adapter=comma))["adapter"]
    equals = _adapter_dir(tmp_path / "a=b")
    assert "'='" in _fields(_spec(model, engine="vllm", adapter=equals))["adapter"]
    assert _fields(_spec(model, adapter=equals)) == {}  # LLaMA-Factory takes it from the yaml
    assert "model" in _fields(_spec("   "))
    oops = validate_serve_spec(_spec(model, template="${oops}"), gpu_available=True)
    assert ("template", "must not contain '${'") in [(p.field, p.message) for p in oops]


def test_names_ports_keys_and_choices(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    for name in ("", "-x", "a b", "a/b", "x=y", "a,b", "é", "x" * 97):
        assert "name" in _fields(_spec(model, name=name)), name
    for name in ("tiny", "Qwen2.5-0.5B_lora", "a" * 96):
        assert _fields(_spec(model, name=name)) == {}, name
    assert "port" in _fields(_spec(model, port=80))
    assert "port" in _fields(_spec(model, port=70000))
    assert "port" in _fields(_spec(model, port=True))
    assert "api_key" in _fields(_spec(model, api_key=""))
    assert "api_key" in _fields(_spec(model, api_key="has space"))
    assert "host" in _fields(_spec(model, host="example.com"))
    assert "engine" in _fields(_spec(model, engine="tgi"))
    assert "backend" in _fields(_spec(model, backend="sglang"))
    assert "backend" in _fields(_spec(model, engine="vllm", backend="vllm"))
    assert "template" in _fields(_spec(model, template=None))
    assert "template" in _fields(_spec(model, template="nope"), templates={"qwen", "default"})
    assert _fields(_spec(model, engine="vllm", template=None)) == {}  # vLLM: tokenizer's template


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"gpu_memory_utilization": 0}, "greater than 0"),
        ({"gpu_memory_utilization": 1.5}, "at most 1"),
        ({"gpu_memory_utilization": float("nan")}, "greater than 0"),
        ({"gpu_memory_utilization": "0.9"}, "must be a number"),
        ({"gpu_memory_utilization": True}, "must be a number"),
        ({"max_model_len": 0}, "at least 16"),
        ({"max_model_len": 2048.5}, "whole number"),
        ({"tensor_parallel_size": 0}, "at least 1"),
        ({"tensor_parallel_size": 4}, "this host has 2 GPU(s)"),
        ({"dtype": "int8"}, "auto, float16, bfloat16, float32"),
        ({"max_loras": 0}, "at least 1"),
        ({"trust_remote_code": "yes"}, "true or false"),
        ({"enforce_eager": 1}, "true or false"),
        ({"swap_space": 4}, "unknown engine argument"),
    ],
)
def test_engine_arg_problems(tmp_path: Path, args: dict[str, Any], message: str) -> None:
    adapter = _adapter_dir(tmp_path / "adapter")
    spec = _spec(_model_dir(tmp_path / "m"), engine="vllm", adapter=adapter, engine_args=args)
    problems = _fields(spec, gpu_count=2)
    assert list(problems) == [f"engine_args.{next(iter(args))}"]
    assert message in next(iter(problems.values()))


def test_engine_args_that_do_not_apply_are_refused(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    assert engine_args_for("llamafactory") == ("dtype", "trust_remote_code")
    assert "max_loras" not in engine_args_for("llamafactory", "vllm")
    assert set(engine_args_for("vllm")) == {
        "gpu_memory_utilization",
        "max_model_len",
        "tensor_parallel_size",
        "dtype",
        "max_loras",
        "trust_remote_code",
        "enforce_eager",
    }
    hf = _fields(_spec(model, engine_args={"gpu_memory_utilization": 0.9}))
    assert "applies only to vllm" in hf["engine_args.gpu_memory_utilization"]
    loras = _fields(_spec(model, backend="vllm", engine_args={"max_loras": 2}))
    assert "applies only to vllm" in loras["engine_args.max_loras"]
    no_adapter = _fields(_spec(model, engine="vllm", engine_args={"max_loras": 2}))
    assert "adapter" in no_adapter["engine_args.max_loras"]


# ---------------------------------------------------------------------- engine discovery


def test_vllm_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vllm = _executable(tmp_path / "venv" / "bin" / "vllm")
    missing = serving_status("vllm", vllm_bin=tmp_path / "nowhere" / "vllm", gpus=["H100"])
    assert not missing.available and "not found" in (missing.missing or "")
    assert "VLLM_BIN" in missing.install_hint
    no_gpu = serving_status("vllm", vllm_bin=vllm, gpus=[])
    assert (no_gpu.available, no_gpu.missing, no_gpu.executable) == (False, NO_GPU, vllm)
    ready = serving_status("vllm", vllm_bin=vllm.parent, gpus=["NVIDIA H100"])  # bin/ works too
    assert ready.available and ready.executable == vllm and ready.gpus == ("NVIDIA H100",)
    assert ready.version is None  # no python beside it to ask
    # Without VLLM_BIN: `vllm` on PATH.
    monkeypatch.setenv("PATH", str(vllm.parent))
    assert serving_status("vllm", gpus=["x"]).executable == vllm
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert serving_status("vllm", gpus=["x"]).missing == "vllm not found on PATH"
    assert not serving_status("tgi", gpus=["x"]).available


def test_llamafactory_status(engine_bin: Path, tmp_path: Path) -> None:
    status = serving_status("llamafactory", bin_dir=engine_bin, gpus=[])
    assert status.available and status.executable == engine_bin / "llamafactory-cli"
    assert status.version == "0.9.5"
    gone = serving_status("llamafactory", bin_dir=tmp_path / "no-venv" / "bin", gpus=[])
    assert not gone.available and gone.install_hint == "make train-env"
    lf_vllm = serving_status("llamafactory", backend="vllm", bin_dir=engine_bin, gpus=[])
    assert (lf_vllm.available, lf_vllm.missing) == (False, NO_GPU)


@pytest.mark.anyio
async def test_start_refuses_a_missing_engine_and_an_empty_key(tmp_path: Path) -> None:
    spec = _spec(_model_dir(tmp_path / "model"), engine="vllm")
    layout = RuntimeLayout(tmp_path / "rt")
    with pytest.raises(ServingEngineUnavailable) as caught:
        await start_server(spec, layout, vllm_bin=tmp_path / "no" / "vllm", gpus=["H100"])
    assert isinstance(caught.value, EngineUnavailable)  # the callers' existing handler fits
    assert "not found" in str(caught.value) and caught.value.serving.engine == "vllm"
    with pytest.raises(ValueError, match="api_key"):
        await start_server(replace(spec, api_key=""), layout, vllm_bin=tmp_path / "v")
    assert not layout.root.exists()  # nothing left behind


# ------------------------------------------------------------------------ ports, reasons


def test_ports() -> None:
    port = pick_free_port()
    assert 1024 <= port <= 65535 and port_free(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        assert not port_free(port)
    assert port_free(port)


def test_failure_reason_names_known_causes(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    log.write_text(
        "[modeltrain] 2025-01-01T00:00:00+00:00 start: vllm serve m\n"
        "torch.OutOfMemoryError: CUDA out of memory\n"
        "[modeltrain] 2025-01-01T00:01:00+00:00 start: vllm serve m\n"
        "loading...\n"
        "ERROR: [Errno 98] error while attempting to bind on address "
        "('127.0.0.1', 18123): address already in use\n",
        encoding="utf-8",
    )
    reason = serving_failure_reason(1, log, port=18123)
    assert reason.splitlines()[0] == "exit code 1: port 18123 is already in use"
    assert "Errno 98" in reason
    # Only the latest start counts: the out-of-memory belongs to an earlier one.
    assert "GPU memory" not in reason
    assert serving_failure_reason(None, tmp_path / "none.log") == (
        "the process ended without an exit code (killed)"
    )


@pytest.mark.anyio
async def test_probe_ready_without_a_server() -> None:
    port = pick_free_port()
    assert not await probe_ready(f"http://127.0.0.1:{port}/v1", KEY, timeout_s=0.5)


# ===================================================== the real llamafactory-cli api (CPU)

BUILD_ADAPTER = r"""
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
config = LoraConfig(
    r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
    init_lora_weights=False,  # random B as well as A: the adapter really changes the output
)
get_peft_model(model, config).save_pretrained(sys.argv[2])
print("adapter saved", sys.argv[2])
"""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope, so that one server can be shared by the tests of this module."""
    return "asyncio"


@pytest.fixture(scope="module")
def lora_adapter(
    engine_bin: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A LoRA adapter for the tiny model made with peft (no training: a few seconds)."""
    out = tmp_path_factory.mktemp("adapter") / "lora"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    subprocess.run(
        [
            "nice",
            "-n",
            "19",
            str(engine_bin / "python"),
            "-c",
            BUILD_ADAPTER,
            str(tiny_model),
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    assert (out / "adapter_config.json").is_file()
    return out


@dataclass
class Served:
    spec: ServeSpec
    layout: RuntimeLayout
    handle: ProcessHandle
    ready_s: float


def _tail(layout: RuntimeLayout) -> str:
    return serving_failure_reason(read_exit_code(layout.exit_path), layout.serve_log, lines=40)


@pytest.fixture(scope="module")
async def served(
    engine_bin: Path,
    tiny_model: Path,
    lora_adapter: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Served]:
    """One `llamafactory-cli api` serving the tiny model with the adapter, for this module."""
    layout = runtime_layout("1", tmp_path_factory.mktemp("serving"))
    spec = _spec(tiny_model, adapter=lora_adapter, port=pick_free_port())
    assert _fields(spec, gpu=False) == {}
    started = time.monotonic()
    handle = await start_server(spec, layout, bin_dir=engine_bin, gpus=[])
    try:
        outcome = await wait_ready(handle, spec, timeout_s=READY_TIMEOUT_S, poll_s=0.5)
        ready_s = time.monotonic() - started
        print(f"\nllamafactory-cli api (tiny model + LoRA) ready after {ready_s:.1f} s")
        assert outcome == "ready", f"{outcome} after {ready_s:.0f} s:\n{_tail(layout)}"
        yield Served(spec, layout, handle, ready_s)
    finally:
        await stop_server(handle)


def _messages(text: str = "Tell me about the weather.") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.slow
@pytest.mark.anyio
async def test_ready_lists_the_name_with_the_adapter_loaded(served: Served) -> None:
    spec = served.spec
    assert await probe_ready(spec.base_url, KEY, name="tiny")
    assert not await probe_ready(spec.base_url, KEY, name="tiny-base")  # one model here
    assert not await probe_ready(spec.base_url, "sk-wrong-key-000000000")
    async with httpx.AsyncClient(trust_env=False) as client:
        listed = await client.get(f"{spec.base_url}/models", headers=_auth())
    assert [m["id"] for m in listed.json()["data"]] == ["tiny"]
    log = served.layout.serve_log.read_text(errors="replace")
    assert f"Loaded adapter(s): {spec.adapter}" in log
    assert yaml.safe_load(served.layout.serve_yaml.read_text())["adapter_name_or_path"] == str(
        spec.adapter
    )
    assert not port_free(spec.port)


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.slow
@pytest.mark.anyio
async def test_streamed_chat_ends_with_done(served: Served) -> None:
    body = {"model": "tiny", "messages": _messages(), "stream": True, "max_tokens": 12}
    lines: list[str] = []
    first_token_s: float | None = None
    started = time.monotonic()
    async with (
        httpx.AsyncClient(trust_env=False, timeout=120) as client,
        client.stream(
            "POST", f"{served.spec.base_url}/chat/completions", json=body, headers=_auth()
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.strip():
                lines.append(line)
                if first_token_s is None and '"content"' in line:
                    first_token_s = time.monotonic() - started
    print(f"\nfirst streamed chunk after {first_token_s or 0:.2f} s")
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text, lines
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.slow
@pytest.mark.anyio
async def test_chat_with_the_adapter(served: Served) -> None:
    body = {"model": "tiny", "messages": _messages("Hello"), "max_tokens": 6}
    async with httpx.AsyncClient(trust_env=False, timeout=120) as client:
        response = await client.post(
            f"{served.spec.base_url}/chat/completions", json=body, headers=_auth()
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    assert 0 < answer["usage"]["completion_tokens"] <= 6


@pytest.mark.slow
@pytest.mark.anyio
async def test_requests_without_the_key_are_refused(served: Served) -> None:
    body = {"model": "tiny", "messages": _messages(), "max_tokens": 2}
    url = served.spec.base_url
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        assert (await client.get(f"{url}/models")).status_code == 401
        assert (await client.post(f"{url}/chat/completions", json=body)).status_code == 401
        wrong = await client.post(f"{url}/chat/completions", json=body, headers=_auth("sk-x"))
        assert wrong.status_code == 401


@pytest.mark.slow
@pytest.mark.anyio
async def test_key_not_on_any_command_line_and_serving_niced(served: Served) -> None:
    members = group_members(served.handle.pgid)
    assert len(members) >= 2  # the runner and the engine
    for pid in members:
        assert KEY.encode() not in proc_file(pid, "cmdline")
        raw = proc_file(pid, "stat")
        assert int(raw[raw.rfind(b")") + 2 :].split()[16]) == SERVE_NICE  # field 19: nice
    engine = [p for p in members if p != served.handle.pid]
    assert any(f"API_KEY={KEY}".encode() in proc_file(p, "environ").split(b"\0") for p in engine)


@pytest.mark.slow
@pytest.mark.anyio
async def test_stop_frees_the_port(served: Served) -> None:
    """Runs last among the shared-server tests (pytest keeps the file's order)."""
    result = await stop_server(served.handle)
    print(f"\nstop: {result.outcome} after {result.elapsed_s:.2f} s")
    assert result.outcome == "first_signal"  # SIGTERM alone was enough
    assert result.elapsed_s < 10
    assert not _group_has_live_members(served.handle.pgid)
    assert not is_alive(served.handle.pid, served.handle.start_time)
    assert port_free(served.spec.port)
    # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean stop here.
    assert read_exit_code(served.layout.exit_path) == -signal.SIGTERM
    log = served.layout.serve_log.read_text(errors="replace")
    assert "Application shutdown complete." in log
    assert "Tell me about the weather." not in log  # API_VERBOSE=0: no prompts in the log
    assert not await probe_ready(served.spec.base_url, KEY)
    again = await stop_server(served.handle)
    assert again.outcome == "not_running"


async def _wait_exit(handle: ProcessHandle, timeout_s: float = EXIT_TIMEOUT_S) -> int | None:
    try:
        return await asyncio.wait_for(wait(handle, poll_s=0.2), timeout_s)
    finally:
        await stop_server(handle)  # a no-op when it ended; frees the port when it did not


@pytest.mark.slow
@pytest.mark.anyio
async def test_broken_model_exits_with_the_reason(engine_bin: Path, tmp_path: Path) -> None:
    model = tmp_path / "broken"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2", ', encoding="utf-8")
    spec = _spec(model, port=pick_free_port())
    assert _fields(spec, gpu=False) == {}  # config.json is there: only the engine can tell
    layout = runtime_layout("broken", tmp_path)
    started = time.monotonic()
    code = await _wait_exit(await start_server(spec, layout, bin_dir=engine_bin, gpus=[]))
    print(f"\nbroken model: exit {code} after {time.monotonic() - started:.1f} s")
    assert code is not None and code != 0
    reason = serving_failure_reason(code, layout.serve_log, port=spec.port)
    assert reason.startswith(f"exit code {code}")
    assert len(reason.splitlines()) > 3  # the log tail follows
    assert "[modeltrain] exit code" in reason
    assert port_free(spec.port)


@pytest.mark.slow
@pytest.mark.anyio
async def test_port_in_use_fails_and_says_so(
    engine_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert not port_free(port)
        spec = _spec(tiny_model, port=port)
        layout = runtime_layout("busy", tmp_path)
        started = time.monotonic()
        code = await _wait_exit(await start_server(spec, layout, bin_dir=engine_bin, gpus=[]))
        print(f"\nport in use: exit {code} after {time.monotonic() - started:.1f} s")
    assert code is not None and code != 0
    reason = serving_failure_reason(code, layout.serve_log, port=port)
    assert reason.splitlines()[0] == f"exit code {code}: port {port} is already in use"


@pytest.mark.slow
@pytest.mark.anyio
async def test_killed_from_outside(engine_bin: Path, tiny_model: Path, tmp_path: Path) -> None:
    spec = _spec(tiny_model, port=pick_free_port())
    layout = runtime_layout("killed", tmp_path)
    handle = await start_server(spec, layout, bin_dir=engine_bin, gpus=[])
    try:
        await asyncio.sleep(2.0)  # the engine is starting (importing torch)
        assert is_alive(handle.pid, handle.start_time)
        assert len(group_members(handle.pgid)) >= 2
        os.killpg(handle.pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_alive(handle.pid, handle.start_time) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert not is_alive(handle.pid, handle.start_time)
        assert read_exit_code(layout.exit_path) is None  # the runner died too: nothing recorded
        assert serving_failure_reason(None, layout.serve_log).startswith(
            "the process ended without an exit code (killed)"
        )
        assert (await stop_server(handle)).outcome == "not_running"
    finally:
        if _group_has_live_members(handle.pgid):
            os.killpg(handle.pgid, signal.SIGKILL)
