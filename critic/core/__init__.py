"""The bottom layer: formats every other part of critic reads and writes (the critique and prompt
format, the tokenizer and its special tokens, rule codes, user errors). Imports nothing of critic."""
