"""The special tokens, defined once. Code looks them up by their text (`token_to_id`), never by a
fixed id: in this project's tokenizer they are ids 0-5 in this order; a public Gemma 2 tokenizer has
the first four at the same ids (0-3) but its turn markers at 106 and 107. Stdlib only: the critique
format, on the CLI's fast path, reads these."""

PAD = "<pad>"
EOS = "<eos>"
BOS = "<bos>"
UNK = "<unk>"
START_OF_TURN = "<start_of_turn>"  # Gemma's chat-turn markers: a critique request is a user turn,
END_OF_TURN = "<end_of_turn>"  # the critique the model's turn, which it ends with END_OF_TURN

SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN)
