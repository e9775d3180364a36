"""Data sources: the real TweetEval folder, CSV/JSONL files, and errors that name the file and line."""

import json

import pytest

from sentiment_pl.prompts import CLASS_NAMES
from sentiment_pl.sources import DataError, LocalFiles, TweetEvalFolder


def test_real_tweeteval_folder_sizes(tweeteval_dir):
    source = TweetEvalFolder(str(tweeteval_dir))
    sizes = {s: len(source.load(s, CLASS_NAMES)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 45615, "validation": 2000, "test": 12284}
    val = source.load("validation", CLASS_NAMES)
    assert set(val.sentiments) == {0, 1, 2}


def write_tweeteval(folder, texts: bytes, labels: bytes):
    folder.mkdir(exist_ok=True)
    (folder / "val_text.txt").write_bytes(texts)
    (folder / "val_labels.txt").write_bytes(labels)
    (folder / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    return TweetEvalFolder(str(folder))


def test_crlf_endings_are_read(tmp_path):
    split = write_tweeteval(tmp_path, b"good day\r\nbad day\r\n", b"2\r\n0\r\n").load("validation", CLASS_NAMES)
    assert split.texts == ["good day", "bad day"] and split.sentiments == [2, 0]


@pytest.mark.parametrize("texts, labels, message", [
    (b"a\nb\nc\n", b"0\n1\n", r"val_text.txt has 3 lines but .*val_labels.txt has 2"),
    (b"a\nb\n", b"0\n7\n", r"val_labels.txt:2: unknown label '7'"),
    (b"a\n  \n", b"0\n1\n", r"val_text.txt:2: empty tweet"),
    (b"a\nb\xff\xfe\n", b"0\n1\n", r"val_text.txt:2: not valid UTF-8"),
])
def test_bad_tweeteval_files_name_file_and_line(tmp_path, texts, labels, message):
    source = write_tweeteval(tmp_path, texts, labels)
    with pytest.raises(DataError, match=message):
        source.load("validation", CLASS_NAMES)


def test_mapping_with_wrong_class_count(tmp_path):
    source = write_tweeteval(tmp_path, b"a\n", b"0\n")
    (tmp_path / "mapping.txt").write_text("0\tnegative\n1\tpositive\n")
    with pytest.raises(DataError, match="mapping.txt maps 2 classes"):
        source.load("validation", CLASS_NAMES)


def test_csv_and_jsonl_with_ids_or_names(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text('tweet,sentiment\n"hello, world",positive\n"she said ""no""",0\n')
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps({"tweet": "ok 👍", "sentiment": 1}) + "\n\n")
    source = LocalFiles(train=str(csv_file), test=str(jsonl), text_column="tweet", label_column="sentiment")
    train = source.load("train", CLASS_NAMES)
    assert train.texts == ["hello, world", 'she said "no"'] and train.sentiments == [2, 0]
    test = source.load("test", CLASS_NAMES)
    assert test.texts == ["ok 👍"] and test.sentiments == [1]


@pytest.mark.parametrize("name, content, message", [
    ("a.csv", "text,label\nfine,neutral\nbad,angry\n", r"a.csv:3: unknown label 'angry'"),
    ("b.csv", "text,label\n,neutral\n", r"b.csv:2: empty tweet"),
    ("c.csv", "body,label\nx,0\n", r"c.csv:2: no column 'text'"),
    ("d.jsonl", '{"text": "x", "label": 0}\n{"text": "y", "label": \n', r"d.jsonl:2: invalid JSON"),
    ("e.txt", "x\n", r"e.txt: unsupported file type '.txt'"),
])
def test_bad_table_files_name_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        LocalFiles(validation=str(path)).load("validation", CLASS_NAMES)


def test_missing_split_file_names_the_option():
    with pytest.raises(DataError, match="data.source.init_args.test"):
        LocalFiles(train="x.csv").load("test", CLASS_NAMES)
