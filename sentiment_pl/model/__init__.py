"""The model layer: the base causal LM (located, loaded, quantized, with LoRA on it), the loss and class
scoring on its hidden states, and the adapter directory format. Uses `sentiment_pl.data` only for the prompt,
IGNORE_INDEX and DataError; imports nothing of training or the commands."""
