"""The LightningModule: a (4-bit) causal LM with LoRA adapters, its masked-completion loss and class scoring."""

from __future__ import annotations

import logging
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable

from sentiment_pl.data.task import TaskEncoding
from sentiment_pl.errors import InputError
from sentiment_pl.model.base import BaseModelSpec, LoraSettings, add_adapters, backbone_and_head
from sentiment_pl.model.base import count_parameters, load_base_model
from sentiment_pl.model.class_weights import resolve_class_weights, weighted_completion_loss
from sentiment_pl.model.fast import install_fast_paths, read_hidden_states, union_positions
from sentiment_pl.model.fast.prefix import check_attention
from sentiment_pl.model.objective import answer_sequences, completion_loss, first_token_scores
from sentiment_pl.model.objective import scoring_positions, sequence_log_probs, supervised_positions
from sentiment_pl.model.precision import CpuHalfPrecision
from sentiment_pl.training.metrics import make_metrics, metrics_record, scalar_metrics
from sentiment_pl.training.schedule import build_schedule, check_schedule, time_budget_spent

log = logging.getLogger(__name__)

STAGES = ("val", "test")
# Where a checkpoint keeps the validation metrics of its own weights (plain numbers: loads with weights_only).
VALIDATION_KEY = "validation_metrics"


class SentimentClassifier(pl.LightningModule):
    """Fine-tunes a causal LM to answer with a class name, and classifies by scoring the class names.

    Args:
        base: The base model: where it comes from, quantization, dtype, gradient checkpointing.
        lora: LoRA adapters; `null` trains every weight (needs `base.quantization: none`).
        optimizer: Optimizer over the trainable parameters, e.g. `torch.optim.AdamW` with its `lr`.
        lr_schedule: transformers schedule name: `linear`, `cosine`, `constant`, `constant_with_warmup`, ...
        warmup_ratio: Fraction of the optimizer steps spent warming the learning rate up from 0. Under
            `trainer.max_time` the schedule follows whichever of steps and time is further along, so a run the
            clock stops ends with the learning rate where the schedule ends it.
        share_prefix: Run the system turn that opens every example once per batch and let every example attend
            to its keys and values, in one decoder call over the packed rows, padding left out (same loss,
            gradients and scores, less compute; without a system turn, only the padding is saved). Needs
            right-padded rows that all start with it and `base.attn_implementation: sdpa`.
        class_weights: Weigh the training loss by class: one number per class, or `balanced` (inverse training
            frequency); `null` weighs every answer token alike.
        trim_last_layer: Run the last decoder layer's query, attention output and MLP only at the positions the
            loss and class scores read (its keys and values at every position): the same results for less
            compute. Llama layers only; other architectures run it in full.
    """

    # ThroughputMonitor asks for FLOPs per batch; they vary with sequence length, so none are reported.
    flops_per_batch = None

    def __init__(self, base: BaseModelSpec = BaseModelSpec(), lora: LoraSettings | None = LoraSettings(),
                 optimizer: OptimizerCallable = torch.optim.AdamW, lr_schedule: str = "linear",
                 warmup_ratio: float = 0.0, share_prefix: bool = True,
                 class_weights: list[float] | Literal["balanced"] | None = None,
                 trim_last_layer: bool = True) -> None:
        super().__init__()
        check_schedule(warmup_ratio)
        if share_prefix:
            check_attention(base.attn_implementation)
        self.save_hyperparameters(ignore=["optimizer"])
        self.base, self.lora = base, lora
        self.optimizer_factory, self.lr_schedule = optimizer, lr_schedule
        self.warmup_ratio = warmup_ratio
        self.class_weights, self.loss_weights = class_weights, None
        self.model = None
        # The classes, their answers, the shared prefix and the pad id: the data module's, given in setup.
        self.task: TaskEncoding | None = None
        self.share_prefix = share_prefix
        # Whether the built model's last layer runs at read positions only (set where it is built).
        self.trim_last_layer, self.last_layer_trimmed = trim_last_layer, False
        # bf16 (or fp16) computation on a CPU, which the module arranges itself (set where the model is built).
        self.cpu_half = CpuHalfPrecision(torch.float32, enabled=False)
        # Checkpoints hold the trainable weights only; the frozen base is rebuilt by configure_model.
        self.strict_loading = False
        # The last computed metrics of each stage, as plain numbers (metrics_record) with the step.
        self.recorded: dict[str, dict[str, Any]] = {}

    # -- set-up ---------------------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Take the task's encoding from the data module (the one place that tokenizes the answers)."""
        dm = self.trainer.datamodule
        dm.load_tokenizer()
        self.task = dm.task
        if self.share_prefix and not self.task.prefix_ids:
            log.info("model.share_prefix: the prompt has no system turn to share; rows are still packed unpadded")
        if self.class_weights is not None and stage == "fit":
            counts = dm.class_counts("train")
            self.loss_weights = resolve_class_weights(self.class_weights, counts, len(self.task.class_names))
            log.info("class weights in the training loss: %s", self.loss_weights.tolist())
        if not hasattr(self, "metrics"):
            self.metrics = torch.nn.ModuleDict({s: make_metrics(len(self.task.class_names)) for s in STAGES})
        log.info("class scoring: %s", "first answer token (one pass)" if self.task.first_tokens_distinct
                 else "full answer sequences (first tokens collide)")

    @property
    def prefix_ids(self) -> tuple[int, ...] | None:
        """The prefix the forward runs once per batch (empty: no system turn, rows still packed); None: rows
        run unshared."""
        if not self.share_prefix:
            return None
        if self.task is None:
            raise RuntimeError("the shared prefix comes with the task: setup() first, or set `task`")
        return self.task.prefix_ids

    def configure_model(self) -> None:
        """Load the base model and add adapters; runs once, after the strategy has chosen the device."""
        if self.model is not None:
            return
        device = self.trainer.strategy.root_device if self._trainer else torch.device("cpu")
        self.model = self.build_model(device)
        self.cpu_half = CpuHalfPrecision.of(self.model.dtype, device)
        self.last_layer_trimmed = install_fast_paths(self.model, self.share_prefix, self.trim_last_layer)
        # from_pretrained leaves the base in eval mode and Lightning keeps each module's mode as found: without
        # this, gradient checkpointing (active only in training mode) would silently stay off.
        self.model.train()
        trainable, total = count_parameters(self.model)
        log.info("trainable parameters: %d of %d (%.3f%%)", trainable, total, 100 * trainable / total)

    def build_model(self, device: torch.device):
        """The base model with what trains on it: LoRA adapters, or every weight with `lora: null`."""
        return add_adapters(load_base_model(self.base, device=device), self.base, self.lora)

    # -- the forward pieces --------------------------------------------------------------------------------

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      read: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Final hidden states [N, width] at the positions `read` (rows, columns; each once), in that order,
        through the fast paths this model was built with."""
        backbone, _ = backbone_and_head(self.model)
        with self.cpu_half.autocast():
            return read_hidden_states(backbone, input_ids, attention_mask, *read, self.prefix_ids,
                                      self.last_layer_trimmed)

    @property
    def head(self):
        return backbone_and_head(self.model)[1]

    def class_log_probs(self, batch: dict[str, torch.Tensor], hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Each class's answer log-probability under the training prompt: [batch, classes]. `hidden`: the hidden
        states at `scoring_positions`, when a pass has read them already (used when first tokens are distinct)."""
        if self.task.first_tokens_distinct:
            if hidden is None:
                hidden = self.hidden_states(batch["input_ids"], batch["attention_mask"],
                                            scoring_positions(batch["prompt_lengths"]))
            return first_token_scores(hidden, self.head, self.task.first_ids)
        ids, mask, labels = answer_sequences(batch["input_ids"], batch["prompt_lengths"], self.task.answers,
                                             self.task.pad_id)
        scores = sequence_log_probs(self.hidden_states(ids, mask, supervised_positions(labels)[:2]), labels, self.head)
        return scores.view(len(batch["input_ids"]), len(self.task.answers))

    # -- steps ---------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        hidden = self.hidden_states(batch["input_ids"], batch["attention_mask"],
                                    supervised_positions(batch["labels"])[:2])
        if self.loss_weights is None:
            loss = completion_loss(hidden, batch["labels"], self.head)
        else:
            weights = self.loss_weights.to(hidden.device)[batch["sentiment"]]
            loss = weighted_completion_loss(hidden, batch["labels"], self.head, weights)
        mask = batch["attention_mask"]
        self.log("train/loss", loss, prog_bar=True, batch_size=len(mask))
        self.log("train/padding_efficiency", mask.sum() / mask.numel(), batch_size=len(mask))
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"]
        supervised, scored = supervised_positions(batch["labels"])[:2], None
        if self.task.first_tokens_distinct:  # the scores read the prompts' last positions too, in the same pass
            read, (loss_rows, score_rows) = union_positions(ids.shape, supervised,
                                                            scoring_positions(batch["prompt_lengths"]))
            hidden = self.hidden_states(ids, batch["attention_mask"], read)
            supervised_hidden, scored = hidden[loss_rows], hidden[score_rows]
        else:
            supervised_hidden = self.hidden_states(ids, batch["attention_mask"], supervised)
        loss = completion_loss(supervised_hidden, batch["labels"], self.head)
        self.log(f"{stage}/loss", loss, batch_size=len(ids), sync_dist=True)
        scores = self.class_log_probs(batch, scored)
        self.metrics[stage].update(scores.argmax(-1), batch["sentiment"])
        # Returned for callbacks (calibration, example predictions) so they need no second forward pass.
        return {"scores": scores.detach(), "sentiment": batch["sentiment"]}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        probs = self.class_log_probs(batch).softmax(-1)
        return {"index": batch["index"].cpu(), "probs": probs.cpu()}

    # -- epoch ends: metrics -------------------------------------------------------------------------------

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> dict[str, Any]:
        values = self.metrics[stage].compute()  # synced across ranks by torchmetrics
        self.metrics[stage].reset()
        if not self.trainer.sanity_checking:
            # For the result table and the checkpoint (the model card's figures).
            self.recorded[stage] = {"step": self.global_step, **metrics_record(values, self.task.class_names)}
        scalars = scalar_metrics(values, self.task.class_names)
        # Already reduced over ranks: logging them with sync_dist would average identical numbers.
        self.log_dict({f"{stage}/{k}": v for k, v in scalars.items()}, rank_zero_only=True)
        experiment = getattr(self.logger, "experiment", None)
        if self.trainer.is_global_zero and hasattr(experiment, "add_figure") and not self.trainer.sanity_checking:
            import matplotlib.pyplot as plt

            fig, _ = self.metrics[stage]["confusion"].plot(values["confusion"], labels=list(self.task.class_names))
            experiment.add_figure(f"{stage}/confusion_matrix", fig, global_step=self.global_step)
            plt.close(fig)
        return values

    # -- optimization ----------------------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = build_schedule(optimizer, self.lr_schedule, total, self.warmup_ratio,
                                   clock=time_budget_spent(self.trainer))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints: adapter-sized --------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        validation = self.recorded.get("val")
        if validation is not None and validation["step"] == self.global_step:  # these weights' own figures
            checkpoint[VALIDATION_KEY] = validation

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "state_dict" not in checkpoint:
            return  # a DeepSpeed checkpoint: the engine has loaded the weights itself
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        missing = sorted(trainable - set(checkpoint["state_dict"]))
        if missing:
            raise InputError(f"checkpoint lacks {len(missing)} trainable weights, e.g. {missing[:3]}; it was saved "
                           "with other model.lora or model.base settings")
