"""Text side of t2i: tokenizer/vocabulary and sentence encoders (seq2seq, skip-thought, TF-Hub)."""
