"""Inference: batched sampling, quote-constrained decoding, Force Sampling Beam Search and the
calibration of a finding's confidence. Above critic.datagen and critic.model."""
