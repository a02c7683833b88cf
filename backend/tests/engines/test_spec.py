"""TrainSpec validation, the yaml LLaMA-Factory reads, dataset_info entries, the job layout and
environment, and engine discovery without an engine (no engine process is started here)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from app.engines import (
    EngineUnavailable,
    JobLayout,
    TrainSpec,
    detect_gpus,
    engine_env,
    engine_status,
    job_layout,
    render_export_yaml,
    render_train_yaml,
    resolve_bin_dir,
    start_train,
    validate_spec,
    write_dataset_info,
)
from app.engines.llamafactory import list_templates, train_cpu_threads

KINDS = {"alpaca_a": "sft", "prefs": "preference", "feedback": "kto", "corpus": "text"}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "base-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def spec(tmp_path: Path, model_dir: Path) -> TrainSpec:
    root = tmp_path / "training"
    return TrainSpec(
        base_model=str(model_dir),
        template="qwen",
        datasets=("alpaca_a",),
        dataset_dir=root / "7" / "data",
        output_dir=root / "7" / "output",
        max_steps=10,
        num_train_epochs=None,
    )


def problems(spec: TrainSpec, *, gpu: bool = False, **kwargs: object) -> dict[str, str]:
    found = validate_spec(spec, gpu_available=gpu, dataset_kinds=KINDS, **kwargs)  # type: ignore[arg-type]
    return {p.field: p.message for p in found}


def test_a_plain_cpu_lora_spec_is_valid(spec: TrainSpec, tmp_path: Path) -> None:
    assert problems(spec, output_root=tmp_path / "training") == {}


@pytest.mark.parametrize(
    ("stage", "dataset", "ok"),
    [
        ("sft", "alpaca_a", True),
        ("sft", "prefs", False),
        ("dpo", "prefs", True),
        ("dpo", "alpaca_a", False),
        ("kto", "feedback", True),
        ("kto", "prefs", False),
        ("pt", "corpus", True),
        ("pt", "alpaca_a", False),
    ],
)
def test_the_stage_decides_which_datasets_fit(
    spec: TrainSpec, stage: str, dataset: str, ok: bool
) -> None:
    found = problems(replace(spec, stage=stage, datasets=(dataset,)))
    if ok:
        assert found == {}
    else:
        assert set(found) == {"datasets"}
        assert f"stage {stage} needs" in found["datasets"]


def test_dpo_names_what_it_needs(spec: TrainSpec) -> None:
    found = problems(replace(spec, stage="dpo"))
    assert "preference dataset" in found["datasets"]


def test_detected_formats_of_the_datasets_service_are_kinds_too(spec: TrainSpec) -> None:
    for detected in ("alpaca", "sharegpt", "openai"):
        found = validate_spec(spec, gpu_available=False, dataset_kinds={"alpaca_a": detected})
        assert found == []
    found = validate_spec(spec, gpu_available=False, dataset_kinds={"alpaca_a": "unknown"})
    assert [(p.field, p.message) for p in found] == [
        ("datasets", "dataset 'alpaca_a' has no usable format (unknown)")
    ]


def test_unknown_and_missing_datasets(spec: TrainSpec) -> None:
    assert "unknown" in problems(replace(spec, datasets=("nope",)))["datasets"]
    assert "at least one" in problems(replace(spec, datasets=()))["datasets"]
    assert "not a valid" in problems(replace(spec, datasets=("a,b",)))["datasets"]


def test_gpu_only_options_are_refused_on_a_cpu_host(spec: TrainSpec) -> None:
    found = problems(replace(spec, finetuning_type="qlora", bf16=True))
    assert "qlora needs a GPU" in found["finetuning_type"]
    assert "bf16 needs a GPU" in found["bf16"]
    assert "fp16 needs a GPU" in problems(replace(spec, fp16=True))["fp16"]
    assert problems(replace(spec, finetuning_type="qlora", bf16=True), gpu=True) == {}
    qlora = replace(spec, finetuning_type="qlora")
    no_bnb = problems(qlora, gpu=True, quantization_available=False)
    assert "bitsandbytes" in no_bnb["finetuning_type"]
    assert "not both" in problems(replace(spec, bf16=True, fp16=True), gpu=True)["fp16"]


def test_epochs_xor_max_steps(spec: TrainSpec) -> None:
    assert "not both" in problems(replace(spec, num_train_epochs=2.0))["max_steps"]
    neither = problems(replace(spec, max_steps=None))
    assert "num_train_epochs or max_steps" in neither["num_train_epochs"]
    assert problems(replace(spec, max_steps=None, num_train_epochs=0.5)) == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("learning_rate", 0.0),
        ("learning_rate", 2.0),
        ("learning_rate", float("nan")),
        ("per_device_train_batch_size", 0),
        ("gradient_accumulation_steps", 5000),
        ("cutoff_len", 4),
        ("lora_rank", 0),
        ("lora_alpha", 0),
        ("lora_dropout", 1.0),
        ("warmup", -0.1),
        ("warmup", 2.5),
        ("save_steps", 0),
        ("logging_steps", 0),
        ("val_size", 0.9),
        ("max_steps", 0),
        ("save_total_limit", 0),
        ("lr_scheduler_type", "sometimes"),
        ("lora_target", "q_proj;rm -rf"),
        ("stage", "ppo"),
        ("finetuning_type", "oft"),
        ("template", ""),
        ("base_model", "not a hub id"),
        ("base_model", "relative/../../etc"),
        ("base_model", "./relative/model"),
        ("max_steps", 2.5),
        ("per_device_train_batch_size", True),
    ],
)
def test_out_of_range_values_name_their_field(spec: TrainSpec, name: str, value: object) -> None:
    assert name in problems(replace(spec, **{name: value}))


def test_local_models_need_a_model_folder_and_hub_ids_pass(spec: TrainSpec, tmp_path: Path) -> None:
    assert "no config.json" in problems(replace(spec, base_model=str(tmp_path)))["base_model"]
    assert problems(replace(spec, base_model="Qwen/Qwen2.5-0.5B-Instruct")) == {}
    assert problems(replace(spec, base_model="gpt2")) == {}


def test_templates_are_checked_when_the_list_is_given(spec: TrainSpec) -> None:
    assert problems(spec, templates=("qwen", "default")) == {}
    assert "unknown template" in problems(spec, templates=("default",))["template"]


def test_paths_outside_the_output_root_are_refused(spec: TrainSpec, tmp_path: Path) -> None:
    root = tmp_path / "training"
    outside = replace(spec, output_dir=tmp_path / "elsewhere")
    assert "must be inside" in problems(outside, output_root=root)["output_dir"]
    escape = replace(spec, output_dir=root / "7" / ".." / ".." / "x")
    assert "must be inside" in problems(escape, output_root=root)["output_dir"]
    assert "absolute" in problems(replace(spec, output_dir=Path("rel/out")))["output_dir"]


def test_resume_needs_a_complete_checkpoint_inside_output_dir(
    spec: TrainSpec, tmp_path: Path
) -> None:
    ckpt = spec.output_dir / "checkpoint-5"
    ckpt.mkdir(parents=True)
    assert (
        "not a complete"
        in problems(replace(spec, resume_from_checkpoint=ckpt))["resume_from_checkpoint"]
    )
    (ckpt / "trainer_state.json").write_text("{}")
    assert problems(replace(spec, resume_from_checkpoint=ckpt)) == {}
    other = tmp_path / "checkpoint-9"
    assert (
        "inside output_dir"
        in problems(replace(spec, resume_from_checkpoint=other))["resume_from_checkpoint"]
    )


def test_swanlab_options(spec: TrainSpec, tmp_path: Path) -> None:
    local = replace(spec, use_swanlab=True, swanlab_mode="local", swanlab_project="tiny")
    assert "log folder" in problems(local)["swanlab_logdir"]
    assert problems(replace(local, swanlab_logdir=tmp_path / "swanlog")) == {}
    assert "swanlab_mode" in problems(replace(local, swanlab_mode="offline"))
    assert "swanlab_project" in problems(replace(local, swanlab_project="a b/c"))
    # off: the options are not looked at
    assert problems(replace(local, use_swanlab=False)) == {}


def test_yaml_loader_interpolation_is_refused(spec: TrainSpec) -> None:
    assert "${" in problems(replace(spec, swanlab_run_name="${oc.env:HOME}"))["swanlab_run_name"]
    with pytest.raises(ValueError, match=r"\$\{"):
        render_train_yaml(replace(spec, template="${oc.env:HOME}"))


def test_render_train_yaml_lora_sft(spec: TrainSpec) -> None:
    args = yaml.safe_load(render_train_yaml(replace(spec, learning_rate=1e-5, warmup=0.1)))
    assert args["model_name_or_path"] == spec.base_model
    assert args["stage"] == "sft"
    assert args["do_train"] is True
    assert args["finetuning_type"] == "lora"
    assert args["lora_rank"] == 8
    assert args["lora_target"] == "all"
    assert "lora_alpha" not in args  # LLaMA-Factory's default (2 x rank)
    assert args["dataset"] == "alpaca_a"
    assert args["dataset_dir"] == str(spec.dataset_dir)
    assert args["output_dir"] == str(spec.output_dir)
    assert args["max_steps"] == 10
    assert "num_train_epochs" not in args
    assert args["learning_rate"] == 1e-5 and isinstance(args["learning_rate"], float)
    assert args["warmup_steps"] == 0.1  # transformers 5: a float < 1 is a ratio
    assert args["report_to"] == "none"
    assert args["overwrite_output_dir"] is True
    assert args["trust_remote_code"] is False
    assert args["dataloader_num_workers"] == 0
    assert "bf16" not in args and "fp16" not in args
    assert "use_swanlab" not in args and "resume_from_checkpoint" not in args
    assert "val_size" not in args


def test_render_the_other_methods_and_stages(spec: TrainSpec, tmp_path: Path) -> None:
    qlora = yaml.safe_load(render_train_yaml(replace(spec, finetuning_type="qlora", bf16=True)))
    assert qlora["finetuning_type"] == "lora"
    assert qlora["quantization_bit"] == 4 and qlora["quantization_method"] == "bnb"
    assert qlora["bf16"] is True
    full = yaml.safe_load(render_train_yaml(replace(spec, finetuning_type="full")))
    assert full["finetuning_type"] == "full" and "lora_rank" not in full
    freeze = yaml.safe_load(render_train_yaml(replace(spec, finetuning_type="freeze")))
    assert freeze["freeze_trainable_layers"] == 2
    dpo = yaml.safe_load(render_train_yaml(replace(spec, stage="dpo", datasets=("prefs",))))
    assert dpo["stage"] == "dpo" and dpo["pref_beta"] == 0.1 and dpo["pref_loss"] == "sigmoid"
    epochs = yaml.safe_load(render_train_yaml(replace(spec, max_steps=None, num_train_epochs=2)))
    assert epochs["num_train_epochs"] == 2.0 and "max_steps" not in epochs
    steps = yaml.safe_load(render_train_yaml(replace(spec, warmup=20, val_size=0.1)))
    assert steps["warmup_steps"] == 20 and isinstance(steps["warmup_steps"], int)
    assert steps["val_size"] == 0.1 and steps["eval_strategy"] == "steps"
    assert steps["eval_steps"] == spec.save_steps
    two = yaml.safe_load(render_train_yaml(replace(spec, datasets=("a", "b"))))
    assert two["dataset"] == "a,b"


def test_resume_keeps_the_trainer_log(spec: TrainSpec) -> None:
    ckpt = spec.output_dir / "checkpoint-5"
    args = yaml.safe_load(render_train_yaml(replace(spec, resume_from_checkpoint=ckpt)))
    assert args["resume_from_checkpoint"] == str(ckpt)
    assert args["overwrite_output_dir"] is False


def test_swanlab_keys_and_no_api_key_in_the_yaml(spec: TrainSpec, tmp_path: Path) -> None:
    text = render_train_yaml(
        replace(
            spec,
            use_swanlab=True,
            swanlab_mode="cloud",
            swanlab_project="proj",
            swanlab_workspace="team",
            swanlab_run_name="run 1",
            swanlab_logdir=tmp_path / "swanlog",
        )
    )
    args = yaml.safe_load(text)
    assert args["use_swanlab"] is True
    assert args["report_to"] == "none"  # LLaMA-Factory adds its own SwanLab callback
    assert args["swanlab_mode"] == "cloud"
    assert args["swanlab_project"] == "proj"
    assert args["swanlab_workspace"] == "team"
    assert args["swanlab_run_name"] == "run 1"
    assert args["swanlab_logdir"] == str(tmp_path / "swanlog")
    assert "api_key" not in text


def test_render_export_yaml(tmp_path: Path) -> None:
    args = yaml.safe_load(
        render_export_yaml("/models/base", tmp_path / "output", "qwen", tmp_path / "merged")
    )
    assert args == {
        "model_name_or_path": "/models/base",
        "adapter_name_or_path": str(tmp_path / "output"),
        "template": "qwen",
        "finetuning_type": "lora",
        "trust_remote_code": False,
        "export_dir": str(tmp_path / "merged"),
        "export_size": 5,
        "export_device": "cpu",
        "export_legacy_format": False,
        "infer_dtype": "auto",
    }
    with pytest.raises(ValueError):
        render_export_yaml("/m", tmp_path, "qwen", tmp_path, export_dtype="int3")


def test_write_dataset_info(tmp_path: Path) -> None:
    path = write_dataset_info(tmp_path / "data", {"d1": {"file_name": "d1.json"}})
    assert json.loads(path.read_text()) == {"d1": {"file_name": "d1.json"}}
    assert [p.name for p in path.parent.iterdir()] == ["dataset_info.json"]  # no temp file left
    with pytest.raises(ValueError):
        write_dataset_info(tmp_path / "data", {"../evil": {"file_name": "x"}})


def test_job_layout(tmp_path: Path) -> None:
    layout = job_layout(42, tmp_path)
    assert layout == JobLayout(tmp_path / "42")
    assert layout.output_dir == tmp_path / "42" / "output"
    assert layout.data_dir.parent == layout.hf_home.parent == layout.root
    for bad in ("..", "a/b", ""):
        with pytest.raises(ValueError):
            job_layout(bad, tmp_path)


def test_engine_env_keeps_server_secrets_out(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SECRET_KEY": "s" * 40,
        "DATABASE_URL": "postgresql://u:p@h/db",
        "encryption_key": "k",
        "SMTP_PASSWORD": "pw",
        "PYTHONPATH": "/work/main/backend",
        "HF_TOKEN": "hf_keep_me",
        "CUDA_VISIBLE_DEVICES": "0",
    }
    env = engine_env(
        bin_dir=tmp_path / "bin",
        hf_home=tmp_path / "hf",
        mpl_dir=tmp_path / "mpl",
        offline=True,
        llamaboard_workdir=tmp_path / "out",
        swanlab_api_key="sk-swan",
        base=base,
    )
    for key in ("SECRET_KEY", "DATABASE_URL", "encryption_key", "SMTP_PASSWORD", "PYTHONPATH"):
        assert key not in env
    assert env["HF_TOKEN"] == "hf_keep_me" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["PATH"] == f"{tmp_path / 'bin'}{os.pathsep}/usr/bin"
    assert env["HF_HOME"] == str(tmp_path / "hf") and env["MPLCONFIGDIR"] == str(tmp_path / "mpl")
    assert env["HF_HUB_OFFLINE"] == "1" and env["DISABLE_VERSION_CHECK"] == "1"
    assert env["LLAMABOARD_ENABLED"] == "1" and env["LLAMABOARD_WORKDIR"] == str(tmp_path / "out")
    assert env["SWANLAB_API_KEY"] == "sk-swan"
    online = engine_env(
        bin_dir=tmp_path, hf_home=tmp_path, mpl_dir=tmp_path, offline=False, base={"PATH": "/b"}
    )
    assert "HF_HUB_OFFLINE" not in online and "LLAMABOARD_ENABLED" not in online
    assert "SWANLAB_API_KEY" not in online
    assert "OMP_NUM_THREADS" not in online and "MKL_NUM_THREADS" not in online
    threaded = engine_env(
        bin_dir=tmp_path, hf_home=tmp_path, mpl_dir=tmp_path, offline=True, cpu_threads=3, base={}
    )
    assert threaded["OMP_NUM_THREADS"] == threaded["MKL_NUM_THREADS"] == "3"


@pytest.mark.parametrize(
    ("configured", "gpus", "cores", "concurrent", "inherited", "expected"),
    [
        (0, 0, 2, 1, None, 1),  # CPU-only: one core left for the server
        (0, 0, 1, 1, None, 1),  # never below one
        (0, 0, 16, 1, None, 15),
        (0, 0, 16, 2, None, 7),  # shared by the runs allowed at once
        (0, 0, 4, 8, None, 1),
        (0, 1, 16, 1, None, None),  # a GPU host keeps torch's default
        (0, 0, 16, 1, "4", None),  # so does an operator's own OMP_NUM_THREADS
        (0, 0, 16, 1, " ", 15),  # an empty one is no setting
        (6, 0, 2, 1, None, 6),  # an explicit setting wins everywhere
        (6, 2, 2, 4, "4", 6),
    ],
)
def test_train_cpu_threads(
    configured: int, gpus: int, cores: int, concurrent: int, inherited: str | None, expected: int
) -> None:
    assert (
        train_cpu_threads(
            configured, gpu_count=gpus, cores=cores, concurrent=concurrent, inherited=inherited
        )
        == expected
    )


@pytest.mark.anyio
async def test_a_missing_engine_says_what_to_run(tmp_path: Path, spec: TrainSpec) -> None:
    status = engine_status(tmp_path / "no-venv" / "bin")
    assert status.available is False
    assert status.version is None
    assert "llamafactory-cli not found" in (status.missing or "")
    assert status.install_hint == "make train-env"
    assert list_templates(tmp_path / "no-venv" / "bin") == ()
    with pytest.raises(EngineUnavailable) as caught:
        await start_train(spec, job_layout(1, tmp_path), bin_dir=tmp_path / "no-venv")
    assert caught.value.status.install_hint == "make train-env"
    assert not (tmp_path / "1").exists()  # nothing left behind


def test_a_broken_venv_is_unavailable(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "llamafactory-cli"
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    status = engine_status(bin_dir)
    assert status.available is False and "broken" in (status.missing or "")
    (bin_dir / "python").symlink_to("/bin/false")
    status = engine_status(bin_dir)
    assert status.available is False and "does not run" in (status.missing or "")


def test_bin_dir_accepts_the_executable_too(tmp_path: Path) -> None:
    assert resolve_bin_dir(tmp_path / "bin" / "llamafactory-cli") == tmp_path / "bin"
    assert resolve_bin_dir(tmp_path / "bin") == tmp_path / "bin"


def test_engine_status_of_the_real_venv_is_cheap(engine_bin: Path) -> None:
    started = time.perf_counter()
    status = engine_status(engine_bin, refresh=True)
    probe_s = time.perf_counter() - started
    assert status.available, status.missing
    assert status.version == "0.9.5" and status.version_supported
    assert probe_s < 5  # about 0.05 s here (`llamafactory-cli version` takes about 5 s)
    started = time.perf_counter()
    for _ in range(100):
        assert engine_status(engine_bin) == status
    assert (time.perf_counter() - started) / 100 < 0.005  # cached: two stat() calls
    assert {"default", "qwen", "llama3"} <= set(list_templates(engine_bin))


def test_detect_gpus_honours_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    found = detect_gpus()
    assert isinstance(found, list) and all(isinstance(name, str) and name for name in found)
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert detect_gpus() == []
