"""Shipped artifacts (tokenizer, default critic); see README.md here for how each was made."""
