"""llm_core against a real OpenAI-compatible server written by others: LLaMA-Factory's
`llamafactory-cli api` (HuggingFace backend, CPU) serving a tiny Qwen2 model built here from
random weights and a byte-level BPE tokenizer (DESIGN.md, "Known facts about the engines").

Runs when the training-engine virtualenv exists: TRAIN_ENGINE_BIN (the llamafactory-cli
executable, or the bin/ folder holding it), else <repo>/.venv-train/bin/llamafactory-cli (`make
train-env`; `make test` builds it). Skips otherwise, or fails when TRAIN_ENGINE_REQUIRED=1 (CI);
CI must run this. The model's words are random; the test checks the protocol, not the text.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.llm_core import (
    BaseClient,
    ChatChunk,
    ChatMessage,
    GenerationParams,
    LLMAuthError,
    LLMClient,
)

REPO = Path(__file__).resolve().parents[3]
MODEL_NAME = "tiny-qwen2"
API_KEY = "sk-lf-test-key-0123456789"
START_TIMEOUT_S = 300.0  # importing torch + transformers on a small CPU box is slow


def _find_cli() -> Path | None:
    configured = os.environ.get("TRAIN_ENGINE_BIN")
    candidates = []
    if configured:
        path = Path(configured)
        candidates.append(path / "llamafactory-cli" if path.is_dir() else path)
    candidates.append(REPO / ".venv-train" / "bin" / "llamafactory-cli")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CLI = _find_cli()

MISSING = "no training-engine venv: run `make train-env` or set TRAIN_ENGINE_BIN"


@pytest.fixture(scope="module", autouse=True)
def _engine_present() -> None:
    """Skip without the engine, except in CI (TRAIN_ENGINE_REQUIRED=1), where that is a failure."""
    if CLI is None:
        if os.environ.get("TRAIN_ENGINE_REQUIRED") == "1":
            pytest.fail(f"TRAIN_ENGINE_REQUIRED=1 but {MISSING}")
        pytest.skip(MISSING)


pytestmark = [pytest.mark.slow]

BUILD_TINY_MODEL = r"""
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

out = Path(sys.argv[1])
corpus = [
    f"The {a} {b} answers question {n} about {c}."
    for n, (a, b, c) in enumerate(
        (a, b, c)
        for a in ("quick", "small", "tiny", "calm", "bright")
        for b in ("model", "assistant", "robot", "parrot")
        for c in ("training", "numbers", "weather", "cats", "language")
    )
] * 4
special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(
    vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
)
tokenizer.train_from_iterator(corpus, trainer)
fast = PreTrainedTokenizerFast(
    tokenizer_object=tokenizer,
    eos_token="<|endoftext|>",
    pad_token="<|endoftext|>",
    additional_special_tokens=special[1:],
)
fast.save_pretrained(out)
config = Qwen2Config(
    vocab_size=len(fast),
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    eos_token_id=fast.eos_token_id,
    pad_token_id=fast.pad_token_id,
    bos_token_id=fast.eos_token_id,
    tie_word_embeddings=True,
)
Qwen2ForCausalLM(config).save_pretrained(out)
print("built", out)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def llamafactory_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The /v1 URL of a running `llamafactory-cli api` serving the tiny model."""
    assert CLI is not None
    work = tmp_path_factory.mktemp("llamafactory-api")
    python = CLI.parent / "python"
    env = {
        **os.environ,
        "HF_HOME": str(work / "hf"),
        "MPLCONFIGDIR": str(work / "mpl"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DISABLE_VERSION_CHECK": "1",
        "CUDA_VISIBLE_DEVICES": "",  # the tiny model runs on CPU everywhere, GPU or not
    }
    model_dir = work / "model"
    subprocess.run(
        [str(python), "-c", BUILD_TINY_MODEL, str(model_dir)],
        env=env,
        check=True,
        timeout=START_TIMEOUT_S,
        capture_output=True,
    )
    config = work / "api.yaml"
    config.write_text(
        f"model_name_or_path: {model_dir}\ntemplate: default\ninfer_backend: huggingface\n",
        encoding="utf-8",
    )
    port = _free_port()
    log_path = work / "api.log"
    env.update(
        {
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "API_MODEL_NAME": MODEL_NAME,
            "API_KEY": API_KEY,
        }
    )
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(CLI), "api", str(config)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop it and its children together
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        headers = {"Authorization": f"Bearer {API_KEY}"}
        while True:
            if server.poll() is not None:
                pytest.fail(f"llamafactory-cli api exited {server.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(f"{base}/models", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llamafactory-cli api not up after {START_TIMEOUT_S:.0f} s:\n{_tail(log_path)}"
                )
            time.sleep(1.0)
        yield base
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


@pytest.fixture
async def client(llamafactory_api: str) -> AsyncIterator[BaseClient]:
    llm = LLMClient.create("custom", llamafactory_api, API_KEY, idle_timeout=120.0)
    yield llm
    await llm.aclose()


HELLO = [ChatMessage(role="user", content="Tell me about the weather.")]


@pytest.mark.anyio
async def test_list_models(client: BaseClient) -> None:
    assert MODEL_NAME in [model.id for model in await client.list_models()]


@pytest.mark.anyio
async def test_chat(client: BaseClient) -> None:
    result = await client.chat(MODEL_NAME, HELLO, GenerationParams(max_tokens=8, temperature=0.7))
    assert isinstance(result.content, str)
    assert result.finish_reason in ("stop", "length")
    assert result.usage is not None and result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens <= 8


@pytest.mark.anyio
async def test_stream(client: BaseClient) -> None:
    chunks: list[ChatChunk] = [
        chunk
        async for chunk in client.stream(MODEL_NAME, HELLO, GenerationParams(max_tokens=8, top_k=5))
    ]
    assert chunks[-1].kind == "finish"
    # LLaMA-Factory reports "stop" even when max_tokens cut the stream (DESIGN.md).
    assert chunks[-1].finish_reason in ("stop", "length")
    assert all(c.kind in ("reasoning", "content", "usage", "finish") for c in chunks)


@pytest.mark.anyio
async def test_early_stop_leaves_the_server_usable(client: BaseClient) -> None:
    stream = client.stream(MODEL_NAME, HELLO, GenerationParams(max_tokens=64))
    await anext(stream)
    await stream.aclose()
    result = await client.chat(MODEL_NAME, HELLO, GenerationParams(max_tokens=2))
    assert result.finish_reason in ("stop", "length")


@pytest.mark.anyio
async def test_wrong_key_is_auth_error(llamafactory_api: str) -> None:
    wrong = LLMClient.create("custom", llamafactory_api, "sk-lf-wrong-key-987654321")
    try:
        with pytest.raises(LLMAuthError) as caught:
            await wrong.chat(MODEL_NAME, HELLO, GenerationParams(max_tokens=2))
        assert "sk-lf-wrong-key-987654321" not in str(caught.value)
    finally:
        await wrong.aclose()
