import os
import warnings

# The distill stage's GKDTrainer lives in trl.experimental (TRL's stable DistillationTrainer is
# on-policy only; rl/distill.py says why that does not fit); we use it on purpose, so its import-time
# warning would only be noise on every `critic train` run.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

# TRL 1.16 itself still calls the model's gradient_checkpointing_* methods, which transformers 5
# renamed; the FutureWarning is TRL's to act on, and would only be noise in `critic train`'s output.
warnings.filterwarnings("ignore", r"`(is_)?gradient_checkpointing\w*` is deprecated", FutureWarning)
