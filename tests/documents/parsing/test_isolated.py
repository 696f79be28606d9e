"""The isolated parser: same results as in-process, and every failure a ParseError."""

from __future__ import annotations

import io
import json
import signal

import pytest

from ragapp.documents.parsing import (
    ParseError,
    ParseLimits,
    UnsupportedTypeError,
    parse_bytes,
    parse_file_isolated,
)
from ragapp.documents.parsing.base import MARKDOWN, PDF, ParsedDocument
from ragapp.documents.parsing.child import main as child_main
from ragapp.documents.parsing.isolated import child_environment, failure_for_returncode
from tests.files import text_pdf

LIMITS = ParseLimits()


def test_the_isolated_result_equals_the_in_process_one(tmp_path):
    data = text_pdf([["First page."], ["Second page."]], title="Two pages")
    path = tmp_path / "two.pdf"
    path.write_bytes(data)
    isolated = parse_file_isolated(path, content_type=PDF, limits=LIMITS)
    assert isolated == parse_bytes(data, content_type=PDF, limits=LIMITS)
    assert [b.page for b in isolated.blocks] == [1, 2]


SECRETS = {
    "SECRET_KEY": "django-insecure-not-for-the-child",
    "OPENAI_API_KEY": "sk-not-for-the-child",
    "DATABASE_URL": "postgres://ragapp:hunter2@db/ragapp",
    "DJANGO_SETTINGS_MODULE": "ragapp.settings",
}


def test_the_child_sees_none_of_the_workers_secrets(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    env = child_environment()
    assert not set(SECRETS) & set(env)
    assert not any("hunter2" in value or "sk-" in value for value in env.values())
    # ... and parses all the same, translatable messages included.
    path = tmp_path / "two.pdf"
    path.write_bytes(text_pdf([["First page."], ["Second page."]]))
    document = parse_file_isolated(path, content_type=PDF, limits=LIMITS)
    assert [b.page for b in document.blocks] == [1, 2]
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(ParseError) as caught:
        parse_file_isolated(tmp_path / "empty.pdf", content_type=PDF, limits=LIMITS)
    assert caught.value.code == "empty"


def test_unicode_survives_the_json_round_trip(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(
        "# Überschrift 日本\n\nText mit “Zitat” und \u2028 Trenner.\n", encoding="utf-8"
    )
    document = parse_file_isolated(path, content_type=MARKDOWN, limits=LIMITS)
    assert document.blocks[0].text == "Überschrift 日本"
    assert "“Zitat”" in document.blocks[1].text


def test_a_type_refusal_in_the_child_stays_an_unsupported_type_error(tmp_path):
    path = tmp_path / "fake.pdf"
    path.write_bytes(b"MZ\x90\x00" + bytes(300))
    with pytest.raises(UnsupportedTypeError) as caught:
        parse_file_isolated(path, content_type=PDF, limits=LIMITS)
    assert caught.value.code == "executable"
    assert str(caught.value) == "The file is a program, not a document."


def test_an_empty_file_is_empty(tmp_path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(ParseError) as caught:
        parse_file_isolated(path, content_type=PDF, limits=LIMITS)
    assert caught.value.code == "empty"


def test_a_missing_file_is_unreadable(tmp_path):
    with pytest.raises(ParseError, match="could not be opened") as caught:
        parse_file_isolated(tmp_path / "gone.pdf", content_type=PDF, limits=LIMITS)
    assert caught.value.code == "unreadable"


@pytest.mark.timeout(60)
def test_a_parse_over_the_time_limit_is_stopped(eval_pdfs):
    limits = ParseLimits(timeout_seconds=1)  # this booklet takes several seconds
    with pytest.raises(ParseError, match="took too long") as caught:
        parse_file_isolated(eval_pdfs / "i1040gi.pdf", content_type=PDF, limits=limits)
    assert caught.value.code == "timeout"


def test_an_unexpected_child_error_is_unreadable_without_a_traceback():
    out = io.StringIO()
    assert child_main(io.StringIO("this is not json"), out) == 0
    answer = json.loads(out.getvalue())
    assert answer == {
        "ok": False,
        "code": "unreadable",
        "message": "The file could not be read (JSONDecodeError).",
    }


def test_a_request_with_bad_limits_is_refused():
    out = io.StringIO()
    request = {"path": "/dev/null", "content_type": PDF, "limits": {"memory_bytes": -1}}
    child_main(io.StringIO(json.dumps(request)), out)
    assert json.loads(out.getvalue())["code"] == "unreadable"


@pytest.mark.parametrize(
    ("returncode", "stderr", "code"),
    [
        (-signal.SIGXCPU, b"", "timeout"),
        (-signal.SIGKILL, b"", "too_large"),
        (-signal.SIGSEGV, b"", "crashed"),
        (
            -signal.SIGABRT,
            b"terminate called after throwing std::bad_alloc",
            "too_large",
        ),
        (1, b"Traceback ... SomethingError", "crashed"),
    ],
)
def test_a_child_that_dies_maps_to_a_plain_reason(returncode, stderr, code):
    error = failure_for_returncode(returncode, stderr)
    assert error.code == code
    assert "Traceback" not in str(error)


def test_documents_from_the_child_are_type_checked():
    good = text_pdf([["x"]])
    document = parse_bytes(good, content_type=PDF, limits=LIMITS).to_json()
    assert ParsedDocument.from_json(document).blocks[0].text == "x"
    document["blocks"][0]["kind"] = "script"
    with pytest.raises(ValueError, match="unknown block kind"):
        ParsedDocument.from_json(document)


def test_parse_errors_keep_their_code_through_pickle():
    import pickle

    error = pickle.loads(pickle.dumps(UnsupportedTypeError("image")))  # noqa: S301 - own object
    assert (type(error), error.code) == (UnsupportedTypeError, "image")
