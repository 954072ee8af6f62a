import subprocess
import sys

import pytest
from tokenizers import processors

from critic.core.tokenizer import (
    DEFAULT_TOKENIZER_PATH,
    load_hf_tokenizer,
    load_tokenizer,
    save_tokenizer,
    stdlib_files,
    train_tokenizer,
)
from critic.core.tokens import SPECIAL_TOKENS

TRICKY = [
    "",
    " ",
    "\n",
    "  leading and trailing spaces  ",
    "def f(x):\n\treturn x  \t\n",
    "a = 1\r\nb = 2\r\n",
    "s = 'café naïve Ünïcödé'\n",
    "# 中文注释\nname = '日本語'\n",
    "emoji = '😀🐍👩‍💻'  # ZWJ sequence\n",
    "\x00\x01\x7f\u00a0\u2028\ufeff",
    "x = '\\n'  # escaped, not a newline\n\n\n",
    "    \n        \n",
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def small_files():
    return stdlib_files()[:20]


def test_shipped_tokenizer(tok):
    assert DEFAULT_TOKENIZER_PATH.is_file()
    assert tok.get_vocab_size() == 8192
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4, 5]
    assert SPECIAL_TOKENS == ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")


def test_chat_markup_is_single_special_token(tok):
    enc = tok.encode("<start_of_turn>user\n")
    assert enc.ids[0] == 4 and enc.tokens[0] == "<start_of_turn>"
    assert 4 not in enc.ids[1:]
    ids = tok.encode("<start_of_turn>model\nok<end_of_turn>\n").ids
    assert ids.count(4) == 1 and ids.count(5) == 1


def test_no_automatic_bos_eos(tok):
    assert tok.encode("x = 1").ids == tok.encode("x = 1", add_special_tokens=True).ids
    assert not {0, 1, 2, 3} & set(tok.encode("x = 1\n").ids)
    assert tok.encode("").ids == []


@pytest.mark.parametrize("s", TRICKY)
def test_round_trip_tricky(tok, s):
    assert tok.decode(tok.encode(s).ids) == s


def test_round_trip_stdlib(tok):
    files = stdlib_files(include_tests=True)  # Debian's python3 ships no test directories: fewer files
    texts = [p.read_text(encoding="utf-8") for p in files[:: max(1, len(files) // 60)]]
    assert len(texts) > 50
    for text, enc in zip(texts, tok.encode_batch(texts), strict=True):
        assert tok.decode(enc.ids, skip_special_tokens=False) == text


def test_training_is_deterministic(small_files):
    a = train_tokenizer(small_files, vocab_size=500)
    b = train_tokenizer(small_files, vocab_size=500)
    assert a.get_vocab_size() == 500
    assert a.to_str() == b.to_str()


def test_load_tokenizer_prefers_model_dir(tmp_path, small_files):
    own = train_tokenizer(small_files, vocab_size=300)
    # A Gemma-style post-processor that prepends <bos> must be dropped on load.
    own.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    own.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(tmp_path)
    assert loaded.get_vocab_size() == 300
    assert loaded.encode("x").ids == own.encode("x", add_special_tokens=False).ids


def test_load_tokenizer_without_tokenizer_json_uses_default(tmp_path, tok):
    assert load_tokenizer(tmp_path).to_str() == tok.to_str()


def test_load_tokenizer_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        load_tokenizer(tmp_path / "no_such_model")


def test_import_does_not_pull_in_transformers():
    code = (
        "import sys, critic.core.tokenizer as t; t.load_tokenizer(); "
        "heavy = {'transformers', 'torch'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_save_tokenizer_loads_with_auto_tokenizer(tmp_path, tok):
    from transformers import AutoTokenizer

    save_tokenizer(tok, tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    assert (hf.pad_token_id, hf.eos_token_id, hf.bos_token_id, hf.unk_token_id) == (0, 1, 2, 3)
    for s in [*TRICKY, "<start_of_turn>user\nx = 1 . , ;\n<end_of_turn>\n"]:
        ids = hf(s)["input_ids"]
        assert ids == tok.encode(s).ids
        assert hf.decode(ids, skip_special_tokens=False) == s


def test_load_hf_tokenizer(tok):
    hf = load_hf_tokenizer()
    assert (hf.pad_token, hf.eos_token, hf.bos_token, hf.unk_token) == ("<pad>", "<eos>", "<bos>", "<unk>")
    s = "def f():\n    return 'é'\n"
    assert hf(s)["input_ids"] == tok.encode(s).ids
