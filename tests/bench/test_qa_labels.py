"""The QA bench's labels: every gold page holds its facts, and a wrong label fails.

Reads the eval PDFs in place (../shared/eval or RAGAPP_EVAL_DIR); without them
these tests fail rather than skip, since the bench cannot be trusted unchecked.
No database: the checker only reads JSON and PDF text.
"""

import json
import sys
from pathlib import Path

import pytest

# bench/ scripts import their siblings by name (`from _common import ...`).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import qa_labels


@pytest.fixture(scope="module")
def pdf_dir() -> Path:
    try:
        return qa_labels.eval_path("pdfs", "SOURCE.md")
    except SystemExit as exc:
        pytest.fail(f"The QA bench is checked against the eval PDFs: {exc}")


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _record(**fields) -> dict:
    return {
        "id": "delta-01",
        "document": "cidr2021_paper17.pdf",
        "question": "In what year did Databricks begin developing Delta Lake?",
        "kind": "fact",
        "gold_pages": [4],
        "facts": ["2016"],
        "split": "tune",
        **fields,
    }


def test_every_label_of_the_question_set_holds_on_its_gold_pages(pdf_dir):
    questions, problems = qa_labels.check(qa_labels.QUESTIONS, pdf_dir)

    assert problems == []
    assert len(questions) >= 64
    assert {q.document for q in questions} == {p.name for p in pdf_dir.glob("*.pdf")}
    assert questions == qa_labels.load_questions()


def test_a_fact_missing_from_its_gold_page_is_reported(pdf_dir, tmp_path):
    path = _write(
        tmp_path / "questions.jsonl",
        [
            _record(),
            _record(id="delta-02", facts=["1999"], split="measure"),
        ],
    )

    _, problems = qa_labels.check(path, pdf_dir)

    assert problems == [
        "delta-02: fact '1999' is on none of pages [4] of cidr2021_paper17.pdf"
    ]


def test_malformed_records_are_all_listed_before_any_pdf_is_read(tmp_path):
    path = _write(
        tmp_path / "questions.jsonl",
        [
            _record(),
            _record(split="measure"),
            _record(id="delta-03", kind="unanswerable", split="measure"),
            {
                key: value
                for key, value in _record(id="delta-04").items()
                if key != "facts"
            },
        ],
    )

    with pytest.raises(qa_labels.LabelError) as raised:
        qa_labels.load_questions(path)

    assert str(raised.value).splitlines() == [
        "delta-01 (line 2): id repeats the one on line 1",
        "delta-03 (line 3): unanswerable but has gold_pages [4] / facts ['2016']",
        "delta-04 (line 4): missing field 'facts'",
    ]
