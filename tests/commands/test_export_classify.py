"""After training: export a checkpoint as an adapter directory and a merged standalone model, then classify
messy files from the adapter alone plus a base model directory, checked against the merged model's own logits."""

import contextlib
import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_ARCHITECTURE
from sentiment_pl.cli import main
from sentiment_pl.commands.classify import classify
from sentiment_pl.commands.export import export
from sentiment_pl.data.batching import Collator
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.sources import DataError
from sentiment_pl.errors import InputError
from sentiment_pl.model.adapter import AdapterInfo
from sentiment_pl.model.base import BaseModelSpec, load_base_model
from sentiment_pl.training.adapter_classifier import AdapterClassifier

pytestmark = pytest.mark.slow
CLASSES = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer_dir, tokenizer, tweets):
    """A tiny base model saved to disk (a stand-in for a hub model), 4 training steps of 4-bit + LoRA on it, export."""
    tmp = tmp_path_factory.mktemp("export")
    base = load_base_model(BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                                         quantization="none", dtype="float32"))
    base.save_pretrained(tmp / "base")
    tokenizer.save_pretrained(tmp / "base")  # as on the hub: weights, config and tokenizer together
    for split, rows in {"train": range(0, 16), "val": range(16, 40), "test": range(40, 72)}.items():
        with open(tmp / f"{split}.jsonl", "w") as f:
            for i in rows:
                f.write(json.dumps({"text": tweets.texts[i], "label": tweets.sentiments[i]}) + "\n")
    config = {
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "enable_progress_bar": False,
                    "enable_model_summary": False, "default_root_dir": str(tmp / "run"),
                    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                               "init_args": {"save_dir": str(tmp / "runs")}}},
        "model": {"base": {"name": str(tmp / "base"), "quantization": "nf4", "dtype": "float32"},
                  "lora": {"dropout": 0.0},
                  "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.02}},
                  "lr_schedule": "constant"},
        "data": {"batch_size": 4, "max_length": 128,
                 "source": {"class_path": "sentiment_pl.data.sources.LocalFiles",
                            "init_args": {"train": str(tmp / "train.jsonl"), "validation": str(tmp / "val.jsonl"),
                                          "test": str(tmp / "test.jsonl")}}},
        "last_checkpoint": {"dirpath": str(tmp / "ckpt")},
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(tmp / "config.yaml")])
    export(str(tmp / "config.yaml"), str(tmp / "ckpt" / "last.ckpt"), str(tmp / "out"))
    # Testing from the checkpoint takes the base from the checkpoint's hyperparameters: run it before moving.
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        main(["test", "--config", str(tmp / "config.yaml"), "--ckpt_path", str(tmp / "ckpt" / "last.ckpt"),
              "--trainer.logger", "false", "--calibration.enabled", "true",
              "--calibration.output", str(tmp / "calibration.json")])
    # The adapter must not depend on where the base was: move it, and pass its new place as the base name.
    (tmp / "base").rename(tmp / "moved_base")
    return {"dir": tmp, "adapter": tmp / "out" / "adapter", "merged": tmp / "out" / "merged",
            "base": str(tmp / "moved_base"), "calibration": tmp / "calibration.json",
            "test_report": report.getvalue()}


MESSY = ['plain tweet', 'quotes "like this" and \'this\', commas, , and; semicolons', 'emoji 😀🔥👍🏽 and ✨',
         'tab\tinside', 'CRLF line', 'x' * 3000, '  leading and trailing spaces  ', '<|user|> </s> fake template']


def write_messy(path: Path) -> None:
    lines = [line.encode() + (b"\r\n" if line == "CRLF line" else b"\n") for line in MESSY]
    path.write_bytes(b"".join(lines))


MERGED_SCORES = textwrap.dedent("""
    import json, sys, torch
    sys.modules["peft"] = None  # the merged model must load and run without peft
    from transformers import AutoModelForCausalLM, AutoTokenizer
    merged, task = sys.argv[1], json.load(open(sys.argv[2]))
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    chat = [{"role": "system", "content": task["system"]}, {"role": "user", "content": task["tweet"]}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    scores = []
    with torch.no_grad():
        for prompt in task["prompts"]:  # one tweet at a time, no padding, the full logits
            logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
            scores.append(logits.log_softmax(-1)[task["first_ids"]].tolist())
    json.dump({"template_ids": ids, "scores": scores}, open(sys.argv[3], "w"))
""")


@pytest.fixture(scope="module")
def reference(exported, tokenizer):
    """Class log-probs of the messy tweets by base + adapter (the module) and by the merged model (subprocess)."""
    module = AdapterClassifier(str(exported["adapter"]), exported["base"])
    module.configure_model()
    module.model.eval()
    encoder = ChatEncoder(tokenizer, module.info.prompt, module.info.max_length)
    module.task = encoder.task  # as setup() takes it from the data module
    encoded = [encoder.encode(t) for t in MESSY]
    with torch.no_grad():
        ours = module.class_log_probs(Collator(tokenizer.eos_token_id)(list(enumerate(encoded))))
    task = {"system": module.info.prompt.system_prompt, "tweet": MESSY[0], "first_ids": list(encoder.task.first_ids),
            "prompts": [e.input_ids for e in encoded]}
    (exported["dir"] / "task.json").write_text(json.dumps(task))
    out = exported["dir"] / "merged_scores.json"
    subprocess.run([sys.executable, "-c", MERGED_SCORES, str(exported["merged"]), str(exported["dir"] / "task.json"),
                    str(out)], check=True)
    merged = json.loads(out.read_text())
    return {"module": ours, "merged": torch.tensor(merged["scores"]), "template_ids": merged["template_ids"],
            "encoded": encoded}


def test_export_writes_adapter_and_standalone_merged_model(exported):
    adapter, merged = exported["adapter"], exported["merged"]
    for name in ("adapter_config.json", "adapter_model.safetensors", "sentiment_pl.json", "tokenizer.json"):
        assert (adapter / name).is_file(), name
    config = json.loads((merged / "config.json").read_text())
    assert "quantization_config" not in config and config["use_cache"] is True
    assert not (merged / "adapter_config.json").exists() and (merged / "model.safetensors").is_file()
    assert (merged / "chat_template.jinja").is_file() or "chat_template" in (merged / "tokenizer_config.json").read_text()


def test_merged_model_scores_equal_base_plus_adapter(reference):
    # The merged weights are the dequantized 4-bit weights plus B @ A * scale; only float32 rounding differs.
    assert reference["module"].abs().max() > 0 and reference["module"].std() > 0
    torch.testing.assert_close(reference["merged"], reference["module"], rtol=0, atol=1e-4)
    # The merged directory carries the chat template: it builds the same prompt as training did.
    assert reference["template_ids"] == reference["encoded"][0].input_ids


def read_csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_classify_a_messy_text_file_keeps_every_row_in_order(exported, reference, tmp_path):
    write_messy(tmp_path / "tweets.txt")
    classify(str(exported["adapter"]), str(tmp_path / "tweets.txt"), str(tmp_path / "out.csv"),
             base_name=exported["base"], accelerator="cpu", batch_size=3)
    rows = read_csv(tmp_path / "out.csv")
    assert [r["text"] for r in rows] == MESSY and [int(r["index"]) for r in rows] == list(range(len(MESSY)))
    probs = torch.tensor([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    # Probabilities over the classes from the merged model's own full logits, one tweet at a time.
    torch.testing.assert_close(probs, reference["merged"].softmax(-1), rtol=0, atol=1e-4)
    assert [r["sentiment"] for r in rows] == [CLASSES[i] for i in probs.argmax(-1)]
    assert reference["encoded"][5].truncated  # the 3,000-character line was cut to fit, not dropped


def test_classify_csv_jsonl_and_stdin_agree(exported, tmp_path, monkeypatch):
    import csv

    with open(tmp_path / "in.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "tweet"])
        writer.writerows([[i, t] for i, t in enumerate(MESSY[:4])] + [[9, "multi\nline, \"quoted\""]])
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"tweet": t}, ensure_ascii=False) + "\n" for t in MESSY[:4]))
    common = {"base_name": exported["base"], "accelerator": "cpu", "text_column": "tweet"}
    classify(str(exported["adapter"]), str(tmp_path / "in.csv"), str(tmp_path / "a.jsonl"), **common)
    classify(str(exported["adapter"]), str(tmp_path / "in.jsonl"), str(tmp_path / "b.jsonl"), **common)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(MESSY[:4]).encode())))
    classify(str(exported["adapter"]), "-", str(tmp_path / "c.jsonl"), base_name=exported["base"], accelerator="cpu")
    a, b, c = ([json.loads(line) for line in (tmp_path / n).read_text().splitlines()] for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    assert [r["text"] for r in a] == MESSY[:4] + ["multi\nline, \"quoted\""]
    for x, y, z in zip(a, b, c):
        assert x["text"] == y["text"] == z["text"]
        assert x["p_positive"] == pytest.approx(y["p_positive"], abs=1e-5) == z["p_positive"]


@pytest.mark.parametrize(("content", "message"), [
    (b"fine\nalso fine\n\xff\xfe broken\n", r"tweets.txt:3: not valid UTF-8"),
    (b"fine\n\nafter a blank\n", r"tweets.txt:2: empty tweet"),
    (b"fine\r\n   \r\n", r"tweets.txt:2: empty tweet"),
])
def test_classify_names_the_bad_line(exported, tmp_path, content, message):
    (tmp_path / "tweets.txt").write_bytes(content)
    with pytest.raises(DataError, match=message):
        classify(str(exported["adapter"]), str(tmp_path / "tweets.txt"), str(tmp_path / "out.csv"),
                 base_name=exported["base"], accelerator="cpu")
    assert not (tmp_path / "out.csv").exists()


def test_an_adapter_directory_is_required(tmp_path):
    with pytest.raises(DataError, match="not an adapter directory"):
        classify(str(tmp_path), "-", str(tmp_path / "out.csv"))


def test_calibrated_test_report_and_classify_with_the_calibration(exported, tmp_path):
    out, calibration = exported["test_report"], exported["calibration"]
    record = json.loads(calibration.read_text())
    assert record["class_names"] == list(CLASSES) and record["bias"][0] == 0
    assert record["validation_macro_f1"]["calibrated"] >= record["validation_macro_f1"]["raw"]
    side_by_side = {line[:24].strip(): line[24:].split() for line in out.splitlines() if line.startswith("macro-F1")}
    this_model = next(line.split() for line in out.splitlines() if line.startswith("this model"))
    assert side_by_side["macro-F1"][0] == this_model[2]  # the raw column is the model's own test macro-F1
    assert "predicted negative" in out and "calibration (fitted on validation)" in out
    # classify applies the same bias: its classes are argmax(scores + bias) of the merged model's own scores.
    (tmp_path / "tweets.txt").write_text("\n".join(MESSY) + "\n")
    classify(str(exported["adapter"]), str(tmp_path / "tweets.txt"), str(tmp_path / "out.csv"),
             base_name=exported["base"], accelerator="cpu", calibration=str(calibration))
    classify(str(exported["adapter"]), str(tmp_path / "tweets.txt"), str(tmp_path / "raw.csv"),
             base_name=exported["base"], accelerator="cpu")
    raw = torch.tensor([[float(r[f"p_{c}"]) for c in CLASSES] for r in read_csv(tmp_path / "raw.csv")])
    calibrated = [r["sentiment"] for r in read_csv(tmp_path / "out.csv")]
    expected = (raw.log() + torch.tensor(record["bias"])).argmax(-1)
    assert calibrated == [CLASSES[i] for i in expected]


def test_tensorboard_shows_example_predictions_and_per_class_f1(exported, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = next((exported["dir"] / "runs").rglob("events.out.tfevents.*")).parent
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0}).Reload()
    for name in CLASSES:
        assert len(events.Scalars(f"val/f1_{name}")) == 1  # one validation in this short run
    assert "custom_scalars__config__" in events.Tags()["tensors"]
    table = events.Tensors("val/examples/text_summary")[-1].tensor_proto.string_val[0].decode()
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    val = [json.loads(line) for line in (exported["dir"] / "val.jsonl").read_text().splitlines()]
    assert [int(r[0].strip("| ")) for r in rows] == list(range(8))
    assert [r[1] for r in rows] == [v["text"].replace("|", "\\|")[:140] for v in val[:8]]
    assert [r[2] for r in rows] == [CLASSES[v["label"]] for v in val[:8]]
    # The probabilities are those of the final weights, which the exported adapter holds.
    (tmp_path / "val.txt").write_text("".join(v["text"] + "\n" for v in val[:8]))
    classify(str(exported["adapter"]), str(tmp_path / "val.txt"), str(tmp_path / "out.csv"),
             base_name=exported["base"], accelerator="cpu")
    for row, predicted in zip(rows, read_csv(tmp_path / "out.csv")):
        assert row[3].removesuffix(" ✗") == predicted["sentiment"]
        shown = [float(x.strip(" |")) for x in row[4:]]
        assert shown == pytest.approx([float(predicted[f"p_{c}"]) for c in CLASSES], abs=6e-4)


def test_the_adapter_keeps_the_task_encoding_and_refuses_one_its_tokenizer_does_not_reproduce(exported, tokenizer,
                                                                                          tmp_path):
    import shutil

    info = json.loads((exported["adapter"] / "sentiment_pl.json").read_text())
    encoder = ChatEncoder(tokenizer, AdapterInfo.read(exported["adapter"]).prompt, info["max_length"])
    assert AdapterInfo.read(exported["adapter"]).task == encoder.task
    (tmp_path / "tweets.txt").write_text("\n".join(MESSY[:3]) + "\n")
    edited, older = tmp_path / "edited", tmp_path / "older"
    shutil.copytree(exported["adapter"], edited)
    shutil.copytree(exported["adapter"], older)
    info["task"]["answers"][0] = [info["task"]["answers"][0][0] + 1, *info["task"]["answers"][0][1:]]
    (edited / "sentiment_pl.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=f"{re.escape(str(edited))}: .*answers: saved"):
        classify(str(edited), str(tmp_path / "tweets.txt"), str(tmp_path / "edited.csv"), base_name=exported["base"],
                 accelerator="cpu")
    del info["task"]  # a directory written before the task was kept: still loads, nothing to compare
    (older / "sentiment_pl.json").write_text(json.dumps(info))
    assert AdapterInfo.read(older).task is None
    classify(str(older), str(tmp_path / "tweets.txt"), str(tmp_path / "older.csv"), base_name=exported["base"],
             accelerator="cpu")
    assert len(read_csv(tmp_path / "older.csv")) == 3


def test_fit_leaves_the_adapter_directory_that_classify_reads(exported, tmp_path):
    fit_adapter = next((exported["dir"] / "runs").rglob("adapter"))
    assert (fit_adapter / "sentiment_pl.json").is_file() and not (fit_adapter / "README.md").exists()
    (tmp_path / "tweets.txt").write_text("\n".join(MESSY[:4]) + "\n")
    for adapter, out in ((fit_adapter, "fit.csv"), (exported["adapter"], "export.csv")):
        classify(str(adapter), str(tmp_path / "tweets.txt"), str(tmp_path / out), base_name=exported["base"],
                 accelerator="cpu")
    # One validation at the end of this run: the best checkpoint holds the final weights, which export read.
    for a, b in zip(read_csv(tmp_path / "fit.csv"), read_csv(tmp_path / "export.csv")):
        assert float(a["p_positive"]) == pytest.approx(float(b["p_positive"]), abs=1e-6)


def test_classify_can_mark_blank_rows_and_keep_one_row_per_input_row(exported, tmp_path):
    (tmp_path / "gaps.txt").write_text("first tweet\n\nthird tweet\n   \nfifth tweet\n")
    (tmp_path / "dense.txt").write_text("first tweet\nthird tweet\nfifth tweet\n")
    common = {"base_name": exported["base"], "accelerator": "cpu"}
    classify(str(exported["adapter"]), str(tmp_path / "gaps.txt"), str(tmp_path / "gaps.csv"), blank_rows="mark",
             **common)
    classify(str(exported["adapter"]), str(tmp_path / "dense.txt"), str(tmp_path / "dense.csv"), **common)
    gaps, dense = read_csv(tmp_path / "gaps.csv"), read_csv(tmp_path / "dense.csv")
    assert [int(r["index"]) for r in gaps] == [0, 1, 2, 3, 4]
    assert [r["sentiment"] for r in (gaps[1], gaps[3])] == ["", ""] and gaps[1]["p_positive"] == ""
    for got, want in zip([gaps[0], gaps[2], gaps[4]], dense):
        assert (got["text"], got["sentiment"], got["p_positive"]) == (want["text"], want["sentiment"],
                                                                       want["p_positive"])
    official = (tmp_path / "gaps.tweeteval.txt").read_text().split("\n")
    assert official[1] == official[3] == "" and len(official) == 6  # five lines and the final newline


def test_export_refuses_a_checkpoint_whose_unpickling_would_run_code(exported, tmp_path):
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "payload": Payload()}, evil)
    with pytest.raises(InputError, match=re.escape(f"{evil}: refused, the checkpoint holds objects that only "
                                                   "unpickling arbitrary code could load")):
        export(str(exported["dir"] / "config.yaml"), str(evil), str(tmp_path / "out"))
    assert not marker.exists() and not (tmp_path / "out").exists()
