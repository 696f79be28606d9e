"""/v1/files through the official SDK, each reply checked against OpenAI's schema."""

from __future__ import annotations

import io

import openai
import pytest

from ragapp.api.models import ApiFile
from tests.api.openai_schema import assert_conforms
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NOTES = b"# Parking\n\nStaff park on level 2.\n"


@pytest.fixture(autouse=True)
def _media(media):
    """Uploaded files land in the test's own directory."""


def upload(client: openai.OpenAI, data: bytes = NOTES, name: str = "notes.md"):
    raw = client.files.with_raw_response.create(
        file=(name, io.BytesIO(data)), purpose="assistants"
    )
    assert_conforms("OpenAIFile", raw.http_response.json())
    return raw.parse()


def test_a_file_is_uploaded_listed_read_and_deleted(staff_sdk):
    made = upload(staff_sdk)
    assert made.id.startswith("file-") and len(made.id) == 29
    assert (made.bytes, made.filename, made.purpose) == (
        len(NOTES),
        "notes.md",
        "assistants",
    )
    assert staff_sdk.files.retrieve(made.id) == made

    raw = staff_sdk.files.with_raw_response.list()
    assert_conforms("ListFilesResponse", raw.http_response.json())
    assert [f.id for f in raw.parse()] == [made.id]

    content = staff_sdk.files.with_raw_response.content(made.id)
    assert content.http_response.content == NOTES
    headers = content.http_response.headers
    assert headers["content-disposition"].startswith("attachment;")
    assert headers["content-security-policy"] == "sandbox"
    assert headers["x-content-type-options"] == "nosniff"

    deleted = staff_sdk.files.with_raw_response.delete(made.id)
    assert_conforms("DeleteFileResponse", deleted.http_response.json())
    assert deleted.parse().deleted is True
    with pytest.raises(openai.NotFoundError) as caught:
        staff_sdk.files.retrieve(made.id)
    assert caught.value.param == "file_id"
    assert not ApiFile.objects.exists()


def test_files_page_with_after_and_filter_by_purpose(staff_sdk):
    made = [upload(staff_sdk, f"note {i}".encode(), f"n{i}.txt") for i in range(5)]
    other = staff_sdk.files.create(file=("b.jsonl", io.BytesIO(b"{}")), purpose="batch")
    page = staff_sdk.files.list(limit=2, purpose="assistants")
    assert page.has_more is True
    seen = [f.id for f in page]  # iterating follows ?after=
    assert seen == [f.id for f in reversed(made)]
    assert other.id not in seen
    oldest_first = [f.id for f in staff_sdk.files.list(order="asc", purpose="batch")]
    assert oldest_first == [other.id]


def test_another_users_file_is_not_found(sdk, make_key, staff_sdk):
    made = upload(staff_sdk)
    stranger = sdk(make_key(UserFactory(username="stranger")).secret)
    for call in (
        lambda: stranger.files.retrieve(made.id),
        lambda: stranger.files.content(made.id),
        lambda: stranger.files.delete(made.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert [f.id for f in stranger.files.list()] == []
    assert ApiFile.objects.filter(public_id=made.id).exists()


def test_a_read_only_key_may_not_upload_or_delete(sdk, make_key, staff, staff_sdk):
    made = upload(staff_sdk)
    reader = sdk(make_key(staff, read_only=True).secret)
    with pytest.raises(openai.PermissionDeniedError):
        upload(reader)
    with pytest.raises(openai.PermissionDeniedError):
        reader.files.delete(made.id)
    assert reader.files.retrieve(made.id).id == made.id


def test_a_file_over_the_upload_limit_is_413(staff_sdk, settings):
    settings.MAX_UPLOAD_BYTES = 10
    with pytest.raises(openai.APIStatusError) as caught:
        upload(staff_sdk, b"x" * 11)
    assert caught.value.status_code == 413
    assert caught.value.param == "file"
    assert not ApiFile.objects.exists()


def test_a_bad_purpose_is_a_400_naming_it(staff_sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        staff_sdk.files.create(file=("a.txt", io.BytesIO(b"a")), purpose="nonsense")
    assert caught.value.param == "purpose"


def test_a_hostile_file_name_is_cleaned_and_never_a_path(staff_sdk):
    made = upload(staff_sdk, name="../../etc/\u202egnp.exe")
    stored = ApiFile.objects.get(public_id=made.id)
    assert "/" not in made.filename and "\u202e" not in made.filename
    assert ".." not in stored.file.name and made.filename not in stored.file.name
    disposition = staff_sdk.files.with_raw_response.content(made.id).http_response
    assert "\u202e" not in disposition.headers["content-disposition"]
