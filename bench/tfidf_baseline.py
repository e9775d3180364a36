"""The bag-of-words reference: TF-IDF + logistic regression on the same TweetEval splits.

Word 1-2-grams (seen at least twice in train), sublinear term frequency, scikit-learn's logistic regression
(C=1), with and without balanced class weights; fitted on train, scored on validation and test with the macro-F1,
macro-recall and accuracy our own `test` reports. It shows how much of a model's test score the shift in class
mix between validation (16 % negative) and test (32 %) takes away, whatever the model.

    python bench/tfidf_baseline.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, read_split, require_assets, write_json  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "tfidf_baseline.json")
    args = p.parse_args()
    require_assets()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    splits = {name: read_split(name) for name in ("train", "validation", "test")}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train = vectorizer.fit_transform(splits["train"][0])
    results: dict[str, dict[str, dict[str, float]]] = {}
    for weights in (None, "balanced"):
        model = LogisticRegression(C=1.0, max_iter=2000, class_weight=weights).fit(train, splits["train"][1])
        key = f"class_weight={weights or 'none'}"
        results[key] = {}
        for name in ("validation", "test"):
            texts, labels = splits[name]
            predicted = model.predict(vectorizer.transform(texts))
            results[key][name] = {"macro_f1": f1_score(labels, predicted, average="macro"),
                                  "macro_recall": recall_score(labels, predicted, average="macro"),
                                  "accuracy": accuracy_score(labels, predicted)}
            row = results[key][name]
            print(f"{key:22s} {name:10s} macro-F1 {row['macro_f1']:.3f}  macro-recall {row['macro_recall']:.3f}  "
                  f"accuracy {row['accuracy']:.3f}")
    write_json(args.output, {"machine": machine(), "results": results})
    print(f"wrote {args.output}")
    plain, balanced = results["class_weight=none"], results["class_weight=balanced"]
    print(f"test_f1={plain['test']['macro_f1']:.4f} test_f1_balanced={balanced['test']['macro_f1']:.4f} "
          f"val_f1={plain['validation']['macro_f1']:.4f} val_f1_balanced={balanced['validation']['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
