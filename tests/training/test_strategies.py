"""DeepSpeed ZeRO-2 with the optimizer offloaded to the CPU, for real on CPU (DeepSpeed's CPU accelerator, gloo,
the compiled DeepSpeedCPUAdam): only adapter weights are in the optimizer, the loss goes down, the checkpoint holds
no frozen base weight, a resumed run equals an uninterrupted one, and known-bad combinations are refused when the
config is parsed."""

import signal

import pytest
import torch

from conftest import ROOT
from sentiment_pl.cli import main
from sentiment_pl.training.compatibility import IncompatibleSettings
from training_runs import CPU_ADAM, ZERO_OFFLOAD, deep_update, recorded, recording, signal_at, tiny_config
from training_runs import tweeteval_folder, write_config

DEEPSPEED = {"trainer": {"strategy": ZERO_OFFLOAD, "accumulate_grad_batches": 2, "max_steps": 6},
             "model": {"optimizer": {"class_path": CPU_ADAM, "init_args": {"lr": 0.01}}}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tweeteval_dir):
    return tweeteval_folder(tmp_path_factory.mktemp("data"), tweeteval_dir, {"train": 40, "val": 8, "test": 8})


def fit(tmp, tokenizer_dir, data_dir, overrides, args=()):
    extra = overrides.get("trainer", {}).get("callbacks", [])
    config = tiny_config(tmp, tokenizer_dir, data_dir, deep_update(overrides, {
        "trainer": {"callbacks": [recording(tmp / "losses.jsonl"), *extra]}}))
    cli = main(["fit", "--config", str(write_config(tmp / "input" / "config.yaml", config)), *args])
    return cli, recorded(tmp / "losses.jsonl")


@pytest.fixture(scope="module")
def zero_run(tmp_path_factory, tokenizer_dir, data_dir, cpu_adam):
    tmp = tmp_path_factory.mktemp("zero")
    cli, losses = fit(tmp, tokenizer_dir, data_dir, DEEPSPEED)
    return {"dir": tmp, "cli": cli, "losses": losses, "log_dir": tmp / "logs" / "run" / "v"}


@pytest.mark.slow
def test_zero_offload_trains_only_adapters_with_cpu_adam(zero_run):
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    engine = zero_run["cli"].trainer.strategy.deepspeed_engine
    assert engine.zero_optimization_stage() == 2 and engine.zero_cpu_offload()
    assert engine.gradient_accumulation_steps() == 2
    assert isinstance(engine.optimizer.optimizer, DeepSpeedCPUAdam)
    lora = [p for n, p in engine.module.named_parameters() if "lora_" in n]
    assert lora and all(p.requires_grad for p in lora)
    assert all(not p.requires_grad for n, p in engine.module.named_parameters() if "lora_" not in n)
    # ZeRO-2 keeps the optimizer's fp32 copy of the parameters it steps, flattened: exactly the adapters.
    stepped = sum(flat.numel() for flat in engine.optimizer.single_partition_of_fp32_groups)
    assert stepped == sum(p.numel() for p in lora)
    # The engine's forward divides the returned loss by the accumulation steps; the ratio is what matters.
    losses = [r["loss"] for r in zero_run["losses"]]
    assert len(losses) == 12 and sum(losses[-4:]) < 0.95 * sum(losses[:4]), losses


@pytest.mark.slow
def test_deepspeed_checkpoint_holds_no_frozen_weights_and_adapter_loads_in_peft(zero_run, tokenizer_dir):
    from peft import PeftModel

    from sentiment_pl.model.base import BaseModelSpec, load_base_model
    from conftest import TINY_ARCHITECTURE

    ckpt = zero_run["log_dir"] / "checkpoints" / "last.ckpt"
    states = torch.load(ckpt / "checkpoint" / "mp_rank_00_model_states.pt", weights_only=False)
    saved = states["module"]
    assert saved and all("lora_" in k for k in saved), sorted(saved)[:5]
    assert states["global_steps"] == 6 and states["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert states["lr_schedulers"] and "rng" in states["callbacks"]["ExactResume"]
    assert list((ckpt.parent).glob("*.partial")) == []
    trained = {n: p.detach().clone() for n, p in zero_run["cli"].model.model.named_parameters() if "lora_" in n}
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32")
    loaded = PeftModel.from_pretrained(load_base_model(spec), zero_run["log_dir"] / "adapter")
    for name, p in loaded.named_parameters():
        if "lora_" in name:
            assert torch.equal(p, trained[name]), name


@pytest.mark.slow
def test_deepspeed_resume_after_sigterm_equals_uninterrupted_run(zero_run, tmp_path, tokenizer_dir, data_dir):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    with pytest.raises(SIGTERMException):
        fit(tmp_path / "first", tokenizer_dir, data_dir,
            deep_update(DEEPSPEED, {"trainer": {"callbacks": [signal_at(2, signal.SIGTERM)]}}))
    ckpt = tmp_path / "first" / "logs" / "run" / "v" / "checkpoints" / "interrupted.ckpt"
    assert (ckpt / "checkpoint" / "mp_rank_00_model_states.pt").exists()
    before = recorded(tmp_path / "first" / "losses.jsonl")
    _, after = fit(tmp_path / "resumed", tokenizer_dir, data_dir, DEEPSPEED, ["--ckpt_path", str(ckpt)])
    reference = zero_run["losses"]
    assert [r["indices"] for r in before + after] == [r["indices"] for r in reference]
    for ours, theirs in zip(before + after, reference):
        assert ours["step"] == theirs["step"]
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-6, abs=1e-6), (ours, theirs)


REFUSED = {
    "zero3_with_4bit": ({"trainer": {"strategy": {"class_path": "sentiment_pl.training.strategies.ZeroOffload",
                                                  "init_args": {"stage": 3}}}}, "use stage: 2"),
    "registry_zero3_with_4bit": ({"trainer": {"strategy": "deepspeed_stage_3"}}, "use stage: 2"),
    "torch_optimizer_with_offload": ({"model": {"optimizer": {"class_path": "torch.optim.AdamW"}}},
                                     f"use {CPU_ADAM}"),
    "bitsandbytes_plugin": ({"trainer": {"plugins": [{"class_path": "lightning.pytorch.plugins.BitsandbytesPrecision",
                                                      "init_args": {"mode": "nf4"}}]}},
                            "model.base.quantization: nf4"),
    "clip_by_value": ({"trainer": {"gradient_clip_algorithm": "value", "gradient_clip_val": 1.0}},
                      "gradient_clip_algorithm: norm"),
    "cpu_adam_on_gpu_without_offload": ({"trainer": {"strategy": "auto", "accelerator": "gpu"}},
                                        "ZeroOffload"),
    "checkpointing_off": ({"trainer": {"enable_checkpointing": False}}, "trainer.enable_checkpointing=false"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_known_bad_combinations_are_refused_before_any_model_loads(case, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr("sentiment_pl.training.module.load_base_model", refuse)
    overrides, advice = REFUSED[case]
    config = deep_update(_yaml(ROOT / "configs" / "qlora_deepspeed.yaml"), overrides)
    with pytest.raises(IncompatibleSettings, match=advice.replace(".", r"\.")):
        main(["fit", "--config", _dump(config)])


def _yaml(path):
    import yaml

    return yaml.safe_load(path.read_text())


def _dump(config) -> str:
    import yaml

    return yaml.safe_dump(config)  # LightningCLI takes a config as a YAML string too


@pytest.mark.slow
def test_shared_prefix_under_deepspeed_trains_like_the_unshared_computation(tmp_path, tokenizer_dir, data_dir,
                                                                            cpu_adam):
    # LoRA dropout off: with it on, the shared prefix draws one dropout mask for the whole batch (same expectation,
    # different samples), and the comparison must be exact.
    runs = {}
    for share in (True, False):
        overrides = deep_update(DEEPSPEED, {"model": {"share_prefix": share, "lora": {"dropout": 0.0}}})
        cli, runs[share] = fit(tmp_path / str(share), tokenizer_dir, data_dir, overrides)
        assert cli.model.prefix_ids if share else not cli.model.prefix_ids
    assert [r["indices"] for r in runs[True]] == [r["indices"] for r in runs[False]]
    for shared, unshared in zip(runs[True], runs[False]):
        # Six optimizer steps of CPU Adam: equal losses at every step mean equal gradients and updates.
        assert shared["loss"] == pytest.approx(unshared["loss"], rel=1e-4, abs=1e-5), (shared, unshared)
    assert runs[True][-1]["loss"] != pytest.approx(runs[True][0]["loss"], rel=1e-3)  # the adapters did move
