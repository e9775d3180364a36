"""Data sources: the real TweetEval folder, CSV/JSONL files, and errors that name the file and line."""

import codecs
import json

import pytest

from sentiment_pl.data.prompts import CLASS_NAMES
from sentiment_pl.data.sources import DataError, LocalFiles, TweetEvalFolder


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
    with pytest.raises(DataError, match=r"mapping.txt maps ids \[0, 1\]; data.prompt.class_names has 3 classes"):
        source.load("validation", CLASS_NAMES)


def test_a_mapping_in_another_class_order_is_honoured(tmp_path):
    source = write_tweeteval(tmp_path, b"great\nawful\nmeh\n", b"0\n2\n1\n")
    (tmp_path / "mapping.txt").write_text("0\tpositive\n1\tneutral\n2\tnegative\n")
    assert source.load("validation", CLASS_NAMES).sentiments == [2, 0, 1]


@pytest.mark.parametrize("mapping, message", [
    ("0\tnegative\n1\tneutral\n2\tpos\n", r"mapping.txt:3: class 'pos' is not one of data.prompt.class_names"),
    ("0\tnegative\n0\tneutral\n2\tpositive\n", r"mapping.txt:2: id 0 or class 'neutral' is mapped twice"),
    ("negative\n", r"mapping.txt:1: expected '<id><tab><class name>', got 'negative'"),
])
def test_a_mapping_that_does_not_fit_the_classes_is_refused(tmp_path, mapping, message):
    source = write_tweeteval(tmp_path, b"a\n", b"0\n")
    (tmp_path / "mapping.txt").write_text(mapping)
    with pytest.raises(DataError, match=message):
        source.load("validation", CLASS_NAMES)


@pytest.mark.parametrize("encode", [
    lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),                        # Excel "CSV UTF-8", Notepad
    lambda t: t.encode("utf-16"),                                        # Excel "Unicode text" (with its BOM)
    lambda t: t.replace("\n", "\r").encode("utf-8"),                     # old Mac editors: CR only
    lambda t: t.replace("\n", "\r\n").encode("utf-8"),                   # Windows
], ids=["utf8-bom", "utf16", "cr", "crlf"])
def test_files_as_editors_and_spreadsheets_save_them(tmp_path, encode):
    (tmp_path / "val.csv").write_bytes(encode("text,label\ncafé ☕,Positive\nbad day,0\n"))
    (tmp_path / "val.tsv").write_bytes(encode("text\tlabel\ncafé ☕\tPositive\nbad day\t0\n"))
    (tmp_path / "semicolon.csv").write_bytes(encode("text;label\ncafé ☕;Positive\nbad day;0\n"))
    (tmp_path / "val.jsonl").write_bytes(encode('{"text": "café ☕", "label": "positive"}\n{"text": "bad day", '
                                                '"label": 0}\n'))
    for name in ("val.csv", "val.tsv", "semicolon.csv", "val.jsonl"):
        split = LocalFiles(validation=str(tmp_path / name)).load("validation", CLASS_NAMES)
        assert (split.texts, split.sentiments) == (["café ☕", "bad day"], [2, 0]), name
    folder = write_tweeteval(tmp_path / "folder", encode("café ☕\nbad day\n"), encode("2\n0\n"))
    assert folder.load("validation", CLASS_NAMES).texts == ["café ☕", "bad day"]


def test_a_json_array_file_is_read_and_bad_items_are_named(tmp_path):
    path = tmp_path / "val.json"
    path.write_text(json.dumps([{"text": "good", "label": 2}, {"text": "bad", "label": "negative"}], indent=2))
    split = LocalFiles(validation=str(path)).load("validation", CLASS_NAMES)
    assert (split.texts, split.sentiments) == (["good", "bad"], [2, 0])
    path.write_text(json.dumps([{"text": "good", "label": 2}, ["not", "an", "object"]]))
    with pytest.raises(DataError, match=r"val.json: item 1: expected a JSON object, got list"):
        LocalFiles(validation=str(path)).load("validation", CLASS_NAMES)


def test_a_csv_row_with_more_fields_than_the_header_is_refused(tmp_path):
    path = tmp_path / "val.csv"
    path.write_text("text,label\nhello, world,2\n")
    with pytest.raises(DataError, match=r"val.csv:2: more fields than the header's 2"):
        LocalFiles(validation=str(path)).load("validation", CLASS_NAMES)


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
