"""Whether the table-row rule of passage_sentences leaves SciFact's sentences alone.

`passage_sentences` makes a line holding " | " a sentence of its own when it
is one sentence (a table row). SciFact abstracts are prose; if every one
splits exactly as before (`split_sentences` of the whitespace-normalised
text), their kept sentence vectors, and so every SciFact figure, are the
same as before the rule, without a 25-minute reload.

    .venv/bin/python bench/sentence_splits.py
"""

from __future__ import annotations

import json

from _common import REPO, django_setup, eval_path


def main() -> None:
    django_setup(REPO / "var" / "bench" / "sentence-splits")
    from ragapp.documents.chunking import (
        MAX_SENTENCES_PER_PASSAGE,
        passage_sentences,
        split_sentences,
    )

    corpus = eval_path("scifact", "corpus.jsonl") / "corpus.jsonl"
    total = same = 0
    with corpus.open() as lines:
        for line in lines:
            text = json.loads(line)["text"]
            normalised = " ".join(text.split())
            before = [s for s in split_sentences(normalised) or [normalised] if s]
            now = [span.text for span in passage_sentences(text)]
            total += 1
            same += before[:MAX_SENTENCES_PER_PASSAGE] == now
    print(f"abstracts={total} identical_sentence_splits={same}")


if __name__ == "__main__":
    main()
