"""Training runs with every module in training mode, so gradient checkpointing and dropout are really on."""

import json

import lightning.pytorch as pl
from transformers.modeling_layers import GradientCheckpointingLayer

from conftest import TINY_ARCHITECTURE
from sentiment_pl.data.datamodule import TweetSentimentData
from sentiment_pl.data.sources import LocalFiles
from sentiment_pl.model.base import BaseModelSpec
from sentiment_pl.training.module import SentimentClassifier


class ModeProbe(pl.Callback):
    def __init__(self) -> None:
        self.eval_modules: list[str] | None = None
        self.checkpointing: list[bool] = []
        self.decoder_layers = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.eval_modules = [name for name, m in pl_module.named_modules() if not m.training]
        # A transformers decoder layer recomputes in backward only when checkpointing is set AND it is training.
        # Every module that carries the flag is checked, whatever its class: the trimmed last layer is a subclass
        # of LlamaDecoderLayer with a name of its own.
        self.checkpointing = [bool(m.gradient_checkpointing) and m.training
                              for m in pl_module.modules() if hasattr(m, "gradient_checkpointing")]
        self.decoder_layers = sum(isinstance(m, GradientCheckpointingLayer) for m in pl_module.modules())


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
    assert probe.decoder_layers == TINY_ARCHITECTURE["num_hidden_layers"]  # every layer was among the checked
