"""Text to token ids: the backbone's tokenizer, chat formatting and truncation, and the
tokenised Arrow datasets. Above core and data; knows no model."""
