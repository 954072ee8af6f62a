"""Byte-level BPE tokenizer for Python code, with Gemma 2's special tokens (critic.core.tokens).

The shipped `data/tokenizer.json` is trained on this machine's Python standard library by
`python -m critic.core.tokenizer --out data/tokenizer.json`; see data/README.md for provenance.
Only `tokenizers` is imported at top level: `critic review` must start fast, so transformers is
imported lazily, inside `load_hf_tokenizer`.
"""

import argparse
import json
import time
from collections.abc import Iterable
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from critic.core.sources import stdlib_root
from critic.core.tokens import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


DEFAULT_TOKENIZER_PATH: Traversable = files("critic.data") / "tokenizer.json"

# Test directories hold deliberately odd files (bad encodings, Python 2 syntax) and are kept out of
# training; they double as held-out text for measuring compression.
_SKIP_DIRS = {"site-packages", "test", "tests", "idle_test"}


def stdlib_files(include_tests: bool = False) -> list[Path]:
    """All *.py files of this interpreter's standard library, sorted so training is reproducible."""
    root = stdlib_root()
    skip = {"site-packages"} if include_tests else _SKIP_DIRS
    return sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts[:-1]))


def train_tokenizer(files: Iterable[Path], vocab_size: int = 8192) -> Tokenizer:
    """Train byte-level BPE on `files` (in the order given); special tokens get ids 0..5."""
    # No normalizer, no prefix space and no post-processor: decode(encode(s)) == s for any str, and
    # callers add <bos>/<eos> themselves.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = (Path(f).read_text(encoding="utf-8", errors="replace") for f in files)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_tokenizer(model_dir: str | Path | None = None) -> Tokenizer:
    """The tokenizer.json in `model_dir` if it has one (every Gemma 2 checkpoint does), else the shipped one.

    Any post-processor is dropped (Gemma's would prepend <bos>), so with every tokenizer encode()
    returns exactly the tokens of the text and callers add <bos>/<eos> themselves.
    """
    path = None
    if model_dir is not None:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model directory not found: {model_dir}")
        path = model_dir / "tokenizer.json"
    if path is not None and path.is_file():
        tok = Tokenizer.from_file(str(path))
    else:
        tok = Tokenizer.from_str(DEFAULT_TOKENIZER_PATH.read_text(encoding="utf-8"))
    tok.post_processor = None
    return tok


def _hf_config() -> dict:
    # Named after the tokens, not the ids, so this also fits a Gemma 2 tokenizer.json.
    return {"pad_token": PAD, "eos_token": EOS, "bos_token": BOS, "unk_token": UNK}


def load_hf_tokenizer(model_dir: str | Path | None = None) -> "PreTrainedTokenizerFast":
    """`load_tokenizer` wrapped for transformers/TRL, with pad/eos/bos/unk set and no automatic <bos>."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=load_tokenizer(model_dir),
        add_bos_token=False,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,  # would rewrite " ." to "." and break code round trips
        **_hf_config(),
    )


def save_tokenizer(tok: Tokenizer, out_dir: str | Path) -> None:
    """Write tok as tokenizer.json plus the configs `AutoTokenizer.from_pretrained(out_dir)` needs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        **_hf_config(),
    }
    for name, obj in [("tokenizer_config.json", config), ("special_tokens_map.json", _hf_config())]:
        (out_dir / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Train on the standard library and write the tokenizer.json that data/ ships."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write tokenizer.json")
    parser.add_argument("--vocab-size", type=int, default=8192)
    args = parser.parse_args(argv)

    paths = stdlib_files()
    t0 = time.perf_counter()
    tok = train_tokenizer(paths, args.vocab_size)
    print(f"trained on {len(paths)} files in {time.perf_counter() - t0:.1f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, vocab {tok.get_vocab_size()})")


if __name__ == "__main__":
    main()
