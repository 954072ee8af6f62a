# TRL's PPOTrainer and GKDTrainer live in trl.experimental in the pinned TRL 1.12; we use them on
# purpose, so its import-time warning would only be noise on every `critic train` run.
import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
