"""Training runs with every module in training mode, so gradient checkpointing and dropout are really on."""

import json

import lightning.pytorch as pl

from conftest import TINY_ARCHITECTURE
from sentiment_pl.data.datamodule import TweetSentimentData
from sentiment_pl.data.sources import LocalFiles
from sentiment_pl.model.base import BaseModelSpec
from sentiment_pl.training.module import SentimentClassifier


class ModeProbe(pl.Callback):
    def __init__(self) -> None:
        self.eval_modules: list[str] | None = None
        self.checkpointing: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.eval_modules = [name for name, m in pl_module.named_modules() if not m.training]
        # A transformers decoder layer recomputes in backward only when checkpointing is set AND it is training.
        self.checkpointing = [bool(getattr(m, "gradient_checkpointing", False)) and m.training
                              for m in pl_module.modules() if type(m).__name__ == "LlamaDecoderLayer"]


def test_fit_trains_in_training_mode_with_checkpointing_active(tweets, tokenizer_dir, tmp_path):
    path = tmp_path / "tweets.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": s}) + "\n"
                            for t, s in zip(tweets.texts[:8], tweets.sentiments[:8])))
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32", gradient_checkpointing=True)
    data = TweetSentimentData(source=LocalFiles(train=str(path), validation=str(path)),
                              tokenizer=str(tokenizer_dir), batch_size=4)
    probe = ModeProbe()
    pl.Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, callbacks=[probe]).fit(
        SentimentClassifier(base=spec), datamodule=data)
    assert probe.eval_modules == []
    assert probe.checkpointing and all(probe.checkpointing)
