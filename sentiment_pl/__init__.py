"""Fine-tune small chat LLMs (QLoRA, PyTorch Lightning) to classify the sentiment of tweets.

The layers, from the bottom up; a module imports from its own layer and the ones listed before it, never from
one listed after it:

- `errors`, `files`, `quiet`, `locate`: the input error, atomic file writing, quiet logging, and where a model
  name points (hub id, directory, GGUF file), for the tokenizer (data/) and the base model (model/) alike.
- `data/`: the task's prompt, tweet files and sources, chat encoding with completion masks, batching, the
  LightningDataModule.
- `model/`: the base LM with LoRA, the loss and class scoring, the adapter directory format; `fast/`: the
  shared prefix and the trimmed last layer. Uses data/ only for the prompt, IGNORE_INDEX and DataError.
- `training/`: the LightningModule, metrics, schedule, checkpoints, strategies, and the run's `callbacks/`.
- `cli`: the LightningCLI (fit/validate/test/predict): a config turned into model, data module and trainer.
- `commands/`: classify, export, inspect, baselines; they rebuild a finished run through `cli`.
- `__main__`: `python -m sentiment_pl`, dispatching to `commands` or `cli`.
"""

__version__ = "0.1.0"
