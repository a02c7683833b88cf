"""The real LLaMA-Factory 0.9.5 on the CPU, driven through app.engines, on the tiny Qwen2 model
(scripts/make_tiny_model.py): a 10-step LoRA SFT with SwanLab in local mode, cancelling a long run
(SIGABRT: the engine stops at the next step and saves), resuming it from its last checkpoint, a
failing run, and merging the adapter into the base model. Every engine process runs at nice 19.
Skipped without the training venv (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from asyncio.subprocess import PIPE
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from app.engines import (
    JobLayout,
    ProcessHandle,
    RunMetrics,
    TrainerLogReader,
    TrainSpec,
    failure_reason,
    is_alive,
    last_checkpoint,
    list_artifacts,
    read_metrics,
    start_export,
    start_train,
    stop,
    tail,
    validate_spec,
    wait,
    write_dataset_info,
)
from app.engines.process import _group_has_live_members, group_exists
from app.engines.trainer_log import TRAINER_LOG
from tests.engines.conftest import WriteDataset

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

RUN_TIMEOUT_S = 300  # importing torch + transformers on a loaded 2-core box is slow


def _spec(layout: JobLayout, model: Path, **changes: object) -> TrainSpec:
    spec = TrainSpec(
        base_model=str(model),
        template="default",
        datasets=("tiny_alpaca",),
        dataset_dir=layout.data_dir,
        output_dir=layout.output_dir,
        num_train_epochs=None,
        max_steps=10,
        learning_rate=1e-2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        cutoff_len=64,
        logging_steps=1,
        save_steps=5,
        lr_scheduler_type="cosine",
    )
    spec = replace(spec, **changes)
    assert validate_spec(spec, gpu_available=False, dataset_kinds={"tiny_alpaca": "sft"}) == []
    return spec


def _proc_children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(raw[raw.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def _nice_of(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rfind(")") + 2 :].split()[16])


async def _finish(handle: ProcessHandle) -> int | None:
    try:
        return await asyncio.wait_for(wait(handle), RUN_TIMEOUT_S)
    except TimeoutError:
        await stop(handle, grace_s=1)
        raise AssertionError("\n".join(tail(handle.log_path, 40))) from None


@dataclass
class SftRun:
    layout: JobLayout
    spec: TrainSpec
    exit_code: int | None
    seconds: float
    live_steps: list[int]  # steps seen while the run was going
    engine_nice: int | None


@pytest.fixture(scope="module")
async def sft_run(
    engine_bin: Path,
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    write_tiny_alpaca: WriteDataset,
) -> SftRun:
    """A 10-step LoRA SFT with SwanLab (local mode), its progress followed while it runs."""
    layout = JobLayout(tmp_path_factory.mktemp("training") / "1")
    write_tiny_alpaca(layout.data_dir)
    spec = _spec(
        layout,
        tiny_model,
        use_swanlab=True,
        swanlab_mode="local",
        swanlab_project="tiny",
        swanlab_run_name="sft-10",
        swanlab_logdir=layout.swanlab_dir,
    )
    started = time.monotonic()
    handle = await start_train(
        spec, layout, bin_dir=engine_bin, swanlab_api_key="sk-not-sent-anywhere"
    )
    reader = TrainerLogReader(spec.output_dir / TRAINER_LOG)
    live_steps: list[int] = []
    engine_nice = None
    while is_alive(handle.pid, handle.start_time) and time.monotonic() - started < RUN_TIMEOUT_S:
        if engine_nice is None and (children := _proc_children(handle.pid)):
            engine_nice = _nice_of(children[0])
        live_steps += [int(r["current_steps"]) for r in reader.read_new()]
        await asyncio.sleep(0.05)
    exit_code = await _finish(handle)
    live_steps += [int(r["current_steps"]) for r in reader.read_new()]
    return SftRun(layout, spec, exit_code, time.monotonic() - started, live_steps, engine_nice)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


async def test_a_10_step_lora_sft_runs_and_is_read_back(sft_run: SftRun) -> None:
    layout, spec = sft_run.layout, sft_run.spec
    assert sft_run.exit_code == 0, "\n".join(tail(layout.train_log, 40))
    print(f"\n10-step LoRA SFT: {sft_run.seconds:.1f} s wall")
    assert sft_run.engine_nice is not None and sft_run.engine_nice >= 19 - 1  # niced (19)

    metrics = read_metrics(spec.output_dir)
    losses = [p.loss for p in metrics.series]
    print("loss per step:", ", ".join(f"{loss:.3f}" for loss in losses if loss is not None))
    assert [p.step for p in metrics.series] == list(range(1, 11))
    assert all(loss is not None and math.isfinite(loss) for loss in losses)
    assert losses[-1] is not None and losses[0] is not None and losses[-1] < losses[0]
    progress = metrics.progress
    assert progress is not None
    assert (progress.step, progress.total, progress.percentage) == (10, 10, 100.0)
    assert progress.loss == losses[-1] and progress.lr is not None
    assert progress.elapsed_s is not None and progress.remaining_s == 0
    assert sft_run.live_steps[-1] == 10 and sorted(set(sft_run.live_steps)) == list(range(1, 11))

    artifacts = list_artifacts(spec.output_dir, layout.export_dir)
    assert artifacts.has_adapter
    assert {p.name for p in artifacts.adapter_files} == {
        "adapter_model.safetensors",
        "adapter_config.json",
    }
    assert [c.step for c in artifacts.checkpoints] == [5, 10]
    assert artifacts.merged_dir is None and artifacts.size_bytes > 0

    # the caches stayed in the job folder; the SwanLab key went by environment only
    assert layout.hf_home.is_dir() and layout.mpl_dir.is_dir()
    assert "sk-not" not in layout.train_yaml.read_text()
    written = yaml.safe_load(layout.train_yaml.read_text())
    assert written["use_swanlab"] is True and written["swanlab_mode"] == "local"
    assert any(layout.swanlab_dir.rglob("*")), "SwanLab wrote nothing in local mode"
    assert (spec.output_dir / "running_log.txt").is_file()  # LLAMABOARD_WORKDIR
    assert "[modeltrain] exit code 0" in layout.train_log.read_text()


async def test_cancel_stops_the_group_within_10_s_and_saves_then_resume_continues(
    engine_bin: Path,
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    write_tiny_alpaca: WriteDataset,
) -> None:
    layout = JobLayout(tmp_path_factory.mktemp("training") / "2")
    write_tiny_alpaca(layout.data_dir)
    spec = _spec(
        layout, tiny_model, max_steps=5000, learning_rate=1e-3, per_device_train_batch_size=2
    )
    handle = await start_train(spec, layout, bin_dir=engine_bin)
    reader = TrainerLogReader(spec.output_dir / TRAINER_LOG)
    first_attempt: list[dict[str, object]] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not any(int(str(r["current_steps"])) >= 8 for r in first_attempt):
        assert is_alive(handle.pid, handle.start_time), "\n".join(tail(layout.train_log, 40))
        assert time.monotonic() < deadline
        first_attempt += reader.read_new()
        await asyncio.sleep(0.05)

    result = await stop(handle)
    print(f"\ncancel: {result.outcome} after {result.elapsed_s:.2f} s")
    assert result.outcome == "first_signal"  # SIGABRT was enough: the engine stopped itself
    assert result.elapsed_s < 10
    assert not _group_has_live_members(handle.pgid)
    assert await wait(handle) == 0  # LLaMA-Factory exits 0 after an abort
    assert not group_exists(handle.pgid)
    first_attempt += reader.read_new()
    stopped_at = max(int(str(r["current_steps"])) for r in first_attempt)
    assert 8 <= stopped_at < 5000
    # state saved: the adapter and trainer state at the top of output_dir
    assert (spec.output_dir / "adapter_model.safetensors").is_file()
    assert (spec.output_dir / "trainer_state.json").is_file()
    ckpt = last_checkpoint(spec.output_dir)
    assert ckpt is not None and ckpt.step % 5 == 0 and 5 <= ckpt.step <= stopped_at
    print(f"stopped at step {stopped_at}; last checkpoint {ckpt.step}")

    # Resume from the checkpoint (to 5 steps past it, to keep the test short).
    resumed_spec = replace(spec, max_steps=ckpt.step + 5, resume_from_checkpoint=ckpt.path)
    kinds = {"tiny_alpaca": "sft"}
    assert validate_spec(resumed_spec, gpu_available=False, dataset_kinds=kinds) == []
    handle = await start_train(resumed_spec, layout, bin_dir=engine_bin)
    assert await _finish(handle) == 0, "\n".join(tail(layout.train_log, 40))
    second_attempt = reader.read_new()
    steps = [int(str(r["current_steps"])) for r in second_attempt if "loss" in r]
    assert steps == list(range(ckpt.step + 1, ckpt.step + 6))
    log = layout.train_log.read_text()
    assert f"global step {ckpt.step}" in log and log.count("start: ") == 2
    # It continued from the saved state: the first resumed step repeats the first attempt's
    # loss for that step exactly (the same weights, optimizer state and batch).
    before = {int(str(r["current_steps"])): r.get("loss") for r in first_attempt if "loss" in r}
    after = {int(str(r["current_steps"])): r["loss"] for r in second_attempt if "loss" in r}
    if ckpt.step + 1 in before:
        assert after[ckpt.step + 1] == pytest.approx(before[ckpt.step + 1], abs=1e-4)
    # The series shows one history: the first attempt up to the checkpoint, then the resumed.
    metrics = RunMetrics()
    metrics.update(first_attempt)
    metrics.update(second_attempt)
    assert [p.step for p in metrics.series] == list(range(1, ckpt.step + 6))
    assert metrics.progress is not None and metrics.progress.step == ckpt.step + 5


async def test_a_failing_run_reports_its_exit_code_and_last_lines(
    engine_bin: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    layout = JobLayout(tmp_path_factory.mktemp("training") / "3")
    # dataset_info names a file that is not there
    write_dataset_info(layout.data_dir, {"tiny_alpaca": {"file_name": "missing.json"}})
    handle = await start_train(_spec(layout, tiny_model), layout, bin_dir=engine_bin)
    code = await _finish(handle)
    assert code is not None and code != 0
    reason = failure_reason(code, layout.train_log)
    print(f"\nfailure reason:\n{reason}")
    assert reason.startswith(f"exit code {code}\n")
    assert "missing.json" in reason or "not found" in reason.lower()


async def test_export_merges_the_adapter_into_a_loadable_model(
    sft_run: SftRun, tiny_model: Path, engine_bin: Path
) -> None:
    layout, spec = sft_run.layout, sft_run.spec
    assert sft_run.exit_code == 0
    started = time.monotonic()
    handle = await start_export(
        layout,
        base_model=spec.base_model,
        adapter_dir=spec.output_dir,
        template=spec.template,
        bin_dir=engine_bin,
    )
    code = await _finish(handle)
    print(f"\nexport: {time.monotonic() - started:.1f} s wall")
    assert code == 0, "\n".join(tail(layout.export_log, 40))
    artifacts = list_artifacts(spec.output_dir, layout.export_dir)
    assert artifacts.merged_dir == layout.export_dir

    check = (
        "import json, sys, torch\n"
        "from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer\n"
        "base, merged = sys.argv[1], sys.argv[2]\n"
        "a, b = AutoConfig.from_pretrained(base), AutoConfig.from_pretrained(merged)\n"
        "keys = ('model_type', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',"
        " 'num_key_value_heads', 'vocab_size')\n"
        "mb = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)\n"
        "mm = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)\n"
        "tok = AutoTokenizer.from_pretrained(merged)\n"
        "wb = mb.model.layers[0].self_attn.q_proj.weight\n"
        "wm = mm.model.layers[0].self_attn.q_proj.weight\n"
        "ids = tok('Tell me about topic 1.', return_tensors='pt').input_ids\n"
        "out = mm(ids).logits\n"
        "print(json.dumps({'same_shape': all(getattr(a, k) == getattr(b, k) for k in keys),"
        " 'arch': b.architectures, 'max_diff': float((wb - wm).abs().max()),"
        " 'finite': bool(torch.isfinite(out).all()), 'adapter_left': any("
        "'lora' in n for n, _ in mm.named_parameters())}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(layout.hf_home)}
    proc = await asyncio.create_subprocess_exec(
        "nice", "-n", "19", str(engine_bin / "python"), "-c", check, str(tiny_model),
        str(layout.export_dir), env=env, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    print("merged model:", report)
    assert report["same_shape"] and report["arch"] == ["Qwen2ForCausalLM"]
    assert report["finite"] and not report["adapter_left"]
    assert report["max_diff"] > 0  # the LoRA update is in the weights
