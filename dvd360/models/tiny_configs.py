"""The tiny profile's model configs (JSON data in `configs/tiny/`) and its offline CLIP tokenizer.

The shapes follow SD 1.5 at a small width: a UNet with 4 down blocks (3 cross-attention + 1
plain, 3 downsamplers), a motion adapter like v1.4 (max sequence length 24, no mid block), a
VAE that downsamples 8x (4 blocks), a 2-layer CLIP text encoder, and SD's DDIM settings.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).parent / "configs"
TINY_DIR = CONFIG_DIR / "tiny"
DDIM_CONFIG = CONFIG_DIR / "ddim.json"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"
MAX_TOKENS = 77


@cache
def tiny_config(name: str) -> dict[str, Any]:
    """The JSON config `configs/tiny/{name}.json` (unet, motion_adapter, vae, text_encoder, lora)."""
    path = TINY_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in TINY_DIR.glob("*.json"))
        raise FileNotFoundError(f"{path}: no tiny config {name!r}; known: {', '.join(known)}")
    return json.loads(path.read_text(encoding="utf-8"))


def ddim_config() -> dict[str, Any]:
    """The DDIM scheduler config both profiles sample with (REFERENCE: linear betas
    0.00085..0.012, clip_sample False, steps_offset 1, "leading" spacing)."""
    return json.loads(DDIM_CONFIG.read_text(encoding="utf-8"))


def tokenizer_words() -> list[str]:
    """The whole-word tokens of the tiny tokenizer, from `configs/tiny/tokenizer_words.txt`."""
    lines = (TINY_DIR / "tokenizer_words.txt").read_text(encoding="utf-8").splitlines()
    return sorted({line.strip().lower() for line in lines if line.strip() and not line.startswith("#")})


def write_tiny_tokenizer(out_dir: str | Path, words: list[str] | None = None) -> Path:
    """Write `vocab.json` + `merges.txt` of a byte-level BPE CLIP tokenizer into `out_dir`.

    Vocabulary: the 256 byte symbols, the same with the end-of-word mark `</w>`, one merge chain
    per word, longest words first (left to right: `v o`, `vo l`, ...; extra merges where greedy
    BPE would still split a word), so each listed word is one token; then the two
    special tokens. Every ASCII text tokenizes without unknowns. Hand-written because
    `tokenizers`' BPE trainer needs a corpus and gives no control over which words stay whole.
    Load with `CLIPTokenizer.from_pretrained(out_dir, model_max_length=77)`.
    """
    from tokenizers.pre_tokenizers import ByteLevel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in alphabet + [symbol + END_OF_WORD for symbol in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []

    def merge(left: str, right: str) -> None:
        if (left, right) not in merges:
            merges.append((left, right))
            vocab.setdefault(left + right, len(vocab))

    words = sorted(words if words is not None else tokenizer_words(), key=lambda w: (-len(w), w))
    for word in words:
        symbols = list(word[:-1]) + [word[-1] + END_OF_WORD]
        for end in range(1, len(symbols)):
            merge("".join(symbols[:end]), symbols[end])
    # Greedy BPE may split a word along another word's merges ("un de r"): join such pieces
    # with extra merges until every word is one token.
    for _ in range(len(words)):
        split = [pieces for pieces in (_bpe_pieces(vocab, merges, w) for w in words) if len(pieces) > 1]
        if not split:
            break
        for pieces in split:
            for end in range(1, len(pieces)):
                merge("".join(pieces[:end]), pieces[end])
    for special in (BOS, EOS):
        vocab[special] = len(vocab)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_TOKENS, "bos_token": BOS,
         "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}, indent=2) + "\n", encoding="utf-8")
    return out_dir


def _bpe_pieces(vocab: dict[str, int], merges: list[tuple[str, str]], word: str) -> list[str]:
    """The tokens BPE with these merges makes of one lowercase word (no special tokens)."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    bpe = Tokenizer(BPE(vocab=dict(vocab), merges=list(merges), end_of_word_suffix=END_OF_WORD))
    return bpe.encode(word).tokens
