"""`critic model ...`: create, inspect and sample from Gemma 2 checkpoint directories."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from critic.core.errors import UserError

app = typer.Typer(help="Create, inspect and sample from Gemma 2 checkpoints.", no_args_is_help=True)


def read_source(path: str) -> str:
    """A file's text (or stdin for '-'), with the user-facing errors the CLI promises."""
    if path == "-":
        return sys.stdin.read()
    file = Path(path)
    if not file.exists():
        raise UserError(f"{path}: no such file")
    if file.is_dir():
        raise UserError(f"{path}: is a directory")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err


@app.command()
def new(
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write.")],
    preset: Annotated[str, typer.Option(help="tiny, small, gemma-2-2b, gemma-2-9b or gemma-2-27b.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed of the random initialisation.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty directory.")] = False,
) -> None:
    """Write a randomly initialised model (config.json, model.safetensors, tokenizer)."""
    from critic.core.tokenizer import load_tokenizer, save_tokenizer
    from critic.model import CriticConfig, new_causal_lm, save_checkpoint

    try:
        config = CriticConfig.from_preset(preset)
    except ValueError as err:
        raise UserError(str(err)) from err
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: directory is not empty (use --force to overwrite)")
    tokenizer = load_tokenizer()
    if tokenizer.get_vocab_size() > config.vocab_size:
        raise UserError(f"preset {preset} has a smaller vocabulary than the shipped tokenizer")
    save_checkpoint(new_causal_lm(config, seed), out)
    save_tokenizer(tokenizer, out)
    Console(stderr=True).print(f"wrote {preset} ({config.num_parameters() / 1e6:.1f} M parameters) to {out}")


@app.command()
def info(directory: Annotated[Path, typer.Argument(help="Checkpoint directory.")]) -> None:
    """Show a checkpoint's architecture without loading its weights."""
    from critic.model.checkpoint import read_config

    config = read_config(directory)
    table = Table(show_header=False, box=None)
    c = config
    pattern = "".join("L" if t == "sliding_attention" else "G" for t in c.layer_types)
    for key, value in (
        ("parameters", f"{c.num_parameters() / 1e6:,.1f} M"),
        ("layers", f"{c.num_hidden_layers} ({pattern}: L = local window {c.sliding_window}, G = global)"),
        ("hidden / intermediate", f"{c.hidden_size} / {c.intermediate_size}"),
        ("heads (query / kv) x dim", f"{c.num_attention_heads} / {c.num_key_value_heads} x {c.head_dim}"),
        ("query_pre_attn_scalar", str(c.query_pre_attn_scalar)),
        ("soft caps (attention / final)", f"{c.attn_logit_softcapping} / {c.final_logit_softcapping}"),
        ("vocabulary", str(c.vocab_size)),
    ):
        table.add_row(key, value)
    Console().print(table)


@app.command()
def generate(
    directory: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    source: Annotated[str, typer.Argument(help="Python file to critique ('-' for stdin).")],
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens to sample.")] = 64,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 is greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Sample a critique of SOURCE from the model (raw text: no FSBS, no reward model)."""
    from critic.core.critique import END_OF_TURN, request
    from critic.core.tokenizer import load_tokenizer
    from critic.inference.sampling import generate as sample
    from critic.model import load_causal_lm

    code = read_source(source)
    model = load_causal_lm(directory)
    tokenizer = load_tokenizer(directory)
    if tokenizer.get_vocab_size() > model.config.vocab_size:
        raise UserError(
            f"{directory}: tokenizer has more tokens than the model's vocabulary (wrong tokenizer.json?)"
        )
    prompt = tokenizer.encode(request(code)).ids
    stop = [model.config.eos_token_id, tokenizer.token_to_id(END_OF_TURN)]
    stop = [t for t in stop if isinstance(t, int)]
    (tokens,) = sample(model, [prompt], max_new_tokens, stop, temperature, seed)
    print(tokenizer.decode(tokens, skip_special_tokens=False))
