"""Build a tiny Qwen2 chat model and its tokenizer, offline, for engine tests and the CPU demo.

Run with the training venv's python (it needs torch, transformers and tokenizers):

    .venv-train/bin/python scripts/make_tiny_model.py OUTPUT_DIR

The model is a Qwen2ForCausalLM (hidden 64, 2 layers, 4 heads, 2 KV heads; `--hidden-size` and
`--layers` make a larger one for benchmarks) with random weights
from a fixed seed; the tokenizer is a byte-level BPE trained here on a small synthetic corpus, with
Qwen2's special tokens and a ChatML chat template, so LLaMA-Factory's `template: default` and
`template: qwen` both work. Nothing is downloaded. The same command gives the same files, and a
second run replaces the first build; a folder that holds something other than a model is refused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Set before transformers is imported: it reads these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

SEED = 1234
VOCAB_SIZE = 512
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# Qwen2's ChatML template (without tools): a system turn only when the conversation has one.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Files a previous build of this script leaves; anything else in OUTPUT_DIR is not ours.
OWN_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
}


def corpus() -> list[str]:
    """Sentences in the shape of the prompts, answers and chat turns the tests send."""
    subjects = ("The quick model", "A small assistant", "The tiny robot", "My calm parrot", "You")
    verbs = ("answers", "explains", "summarises", "translates", "writes about")
    topics = (
        "the weather today",
        "numbers and sums",
        "cats and dogs",
        "language and grammar",
        "training a model",
        "a short poem",
        "the capital of France",
        "hello world in Python",
    )
    lines = [
        f"{s} {v} {t}. {n} + {n + 1} = {2 * n + 1}!"
        for n, (s, v, t) in enumerate((s, v, t) for s in subjects for v in verbs for t in topics)
    ]
    chats = [
        f"{IM_START}system\nYou are a helpful assistant.{IM_END}\n"
        f"{IM_START}user\nTell me about {t}.{IM_END}\n"
        f"{IM_START}assistant\nHere is what I know about {t}.{IM_END}\n"
        f"Human: What is {t}?{ENDOFTEXT}\nAssistant: It is {t}.{ENDOFTEXT}\n"
        for t in topics
    ]
    mixed = "Instruction: Input: Output: Question: Answer: 你好，世界。 Ça va? 123 4567 890"
    return [*lines, *chats, mixed] * 3


def build(out: Path, hidden_size: int = 64, layers: int = 2) -> None:
    """Write the model, tokenizer and generation config into `out` (an empty folder)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(
            vocab_size=VOCAB_SIZE,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,  # as in Qwen2's chat models: a turn ends the answer
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.save_pretrained(out)

    im_end, endoftext = (tokenizer.convert_tokens_to_ids(t) for t in (IM_END, ENDOFTEXT))
    assert isinstance(im_end, int) and isinstance(endoftext, int)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 11 // 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=im_end,
        pad_token_id=endoftext,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[im_end, endoftext],
        pad_token_id=endoftext,
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
    )
    model.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path, help="folder to write the model into")
    parser.add_argument(
        "--hidden-size",
        type=int,
        default=64,
        help="hidden size, a multiple of 8 (default 64; benchmarks use larger ones)",
    )
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    args = parser.parse_args(argv)
    if args.hidden_size < 8 or args.hidden_size % 8 or not 1 <= args.layers <= 64:
        parser.error("--hidden-size must be a positive multiple of 8 and --layers 1..64")
    out: Path = args.output_dir.resolve()

    if out.exists() and not out.is_dir():
        print(f"error: {out} exists and is not a folder", file=sys.stderr)
        return 2
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OWN_FILES)
        if foreign:
            print(
                f"error: {out} holds files this script did not write ({', '.join(foreign[:5])}); "
                "choose an empty or new folder",
                file=sys.stderr,
            )
            return 2

    # Build beside the target, then swap, so an interrupted run never leaves half a model.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        build(staging, args.hidden_size, args.layers)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

    total = 0
    print(f"tiny Qwen2 model written to {out}:")
    for path in sorted(out.iterdir()):
        size = path.stat().st_size
        total += size
        print(f"  {path.name:28} {size:>9,} bytes")
    print(f"  {'total':28} {total:>9,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
