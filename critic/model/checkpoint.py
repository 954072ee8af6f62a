"""Read and write Hugging Face checkpoint directories without transformers.

A directory holds config.json and model.safetensors (or shards listed in
model.safetensors.index.json), exactly as `save_pretrained` writes them, so the
review path opens our checkpoints and the public Gemma 2 weights alike. Only
safetensors are read: never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from critic.core.errors import CheckpointError
from critic.model.config import CriticConfig
from critic.model.gemma2 import Gemma2CausalLM, Gemma2RewardModel, init_weights

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
TIED_KEYS = {"lm_head.weight"}  # tied to model.embed_tokens.weight; checkpoints usually omit it


def read_config(directory: str | Path) -> CriticConfig:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (not a checkpoint directory?)")
    try:
        return CriticConfig.from_json_file(path)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from err


def weight_files(directory: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint: one file, or the shards its index lists."""
    directory = Path(directory)
    index = directory / INDEX_NAME
    if not index.is_file():
        return [directory / WEIGHTS_NAME]
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (json.JSONDecodeError, KeyError) as err:
        raise CheckpointError(f"{index}: malformed index ({err})") from err
    return [directory / name for name in shards]


def _open_error(file: Path, err: Exception) -> CheckpointError:
    if not file.is_file():
        return CheckpointError(f"{file}: no such file")
    return CheckpointError(f"{file}: unreadable safetensors file ({err})")


def verify_checkpoint(directory: str | Path) -> CriticConfig:
    """Config plus every weight file's header, without reading tensors: a cheap check that fails
    early, naming the file, before a long job loads the weights."""
    config = read_config(directory)
    for file in weight_files(directory):
        try:
            with safe_open(file, framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise _open_error(file, err) from err
    return config


def read_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in weight_files(directory):
        try:
            state.update(load_file(file))
        except (SafetensorError, OSError) as err:
            raise _open_error(file, err) from err
    return state


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], directory: Path, optional: set[str]) -> None:
    """Strict key and shape matching: a checkpoint that does not fit is an error, not a warning."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or wrong_shape:
        parts = [
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong_shape))
            if keys
        ]
        raise CheckpointError(f"{directory}: weights do not match the config ({'; '.join(parts)})")
    model.load_state_dict(state, strict=False)


# Below this size a model is built on the CPU and its random init simply overwritten: building on the
# meta device imports torch's Python reference ops (about a second), more than a small model's init.
META_ABOVE_PARAMETERS = 50_000_000


def _unfilled(cls, config: CriticConfig, *args):
    """A model whose weights are about to be loaded: on the meta device only where init would cost."""
    if config.num_parameters() < META_ABOVE_PARAMETERS:
        return cls(config, *args)
    with torch.device("meta"):
        return cls(config, *args)


def load_causal_lm(
    directory: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Gemma2CausalLM:
    """The policy from a checkpoint directory (ours or a public Gemma 2), in eval mode."""
    config = read_config(directory)
    model = _unfilled(Gemma2CausalLM, config)
    state = read_state_dict(directory)
    head, embed = state.get("lm_head.weight"), state.get("model.embed_tokens.weight")
    if head is not None and embed is not None and not torch.equal(head, embed):
        raise CheckpointError(f"{directory}: lm_head.weight differs from the embeddings (Gemma 2 ties them)")
    state.pop("lm_head.weight", None)
    model = model.to_empty(device=device)
    _load_into(model, state, Path(directory), optional=TIED_KEYS)
    model.lm_head.weight = model.model.embed_tokens.weight
    return model.to(dtype).eval()


def load_reward_model(
    directory: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Gemma2RewardModel:
    """A reward/value model (`score` head) saved by `CriticForSequenceClassification`."""
    config = read_config(directory)
    raw = json.loads((Path(directory) / "config.json").read_text())
    num_labels = len(raw.get("id2label") or {"0": "LABEL_0"})
    model = _unfilled(Gemma2RewardModel, config, num_labels).to_empty(device=device)
    _load_into(model, read_state_dict(directory), Path(directory), optional=set())
    return model.to(dtype).eval()


def new_causal_lm(config: CriticConfig, seed: int = 0) -> Gemma2CausalLM:
    """A randomly initialised policy (for tests and training from scratch)."""
    torch.manual_seed(seed)
    model = Gemma2CausalLM(config)
    model.apply(lambda m: init_weights(m, config.initializer_range))
    return model


def save_checkpoint(model: Gemma2CausalLM | Gemma2RewardModel, directory: str | Path) -> None:
    """config.json + model.safetensors, loadable by transformers' Gemma2 classes too."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    if isinstance(model, Gemma2RewardModel):
        config["architectures"] = ["Gemma2ForSequenceClassification"]
        n = model.score.out_features
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(n)}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in TIED_KEYS}
    save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
