"""The training layer: the LightningModule, its metrics and schedule, checkpoints, strategies and the
callbacks a run uses. Builds on `sentiment_pl.model` and `sentiment_pl.data`; imports nothing of the
commands."""
