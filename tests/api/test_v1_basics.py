"""/v1 through the official SDK: models, errors, embeddings, moderations, keys."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest

from ragapp.api.models import ApiKey, ApiRequest
from ragapp.providers.base import MODERATION_CATEGORIES

pytestmark = pytest.mark.django_db


def test_models_are_the_collections_the_key_may_read(staff_sdk, handbook, garden):
    ids = [model.id for model in staff_sdk.models.list()]
    assert "collection:handbook" in ids
    assert "collection:garden" not in ids
    assert "ragapp-extractive" in ids
    assert staff_sdk.models.retrieve("collection:handbook").owned_by == "ragapp"
    with pytest.raises(openai.NotFoundError) as caught:
        staff_sdk.models.retrieve("collection:garden")
    assert caught.value.code == "model_not_found"


def test_a_scoped_key_lists_only_its_collections(
    sdk, make_key, staff, handbook, readers
):
    from tests.factories import CollectionFactory

    other = CollectionFactory(name="Other", slug="other")
    other.reader_groups.add(readers)
    key = make_key(staff, collections=[other])
    ids = [model.id for model in sdk(key.secret).models.list()]
    assert "collection:other" in ids
    assert "collection:handbook" not in ids


def test_a_bad_key_raises_authentication_error(sdk, db):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk("rag_" + "x" * 43).models.list()
    assert caught.value.body["message"]
    assert caught.value.type == "invalid_request_error"


def test_no_key_is_401_with_openai_error_shape(wsgi_http, db):
    response = wsgi_http.get("http://testserver/v1/models")
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"].startswith("req_")


def test_a_revoked_key_fails_on_the_next_request(sdk, make_key, staff):
    issued = make_key(staff)
    client = sdk(issued.secret)
    client.models.list()
    from ragapp.api.keys import apikey_revoke

    apikey_revoke(key=issued.key)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_a_key_in_the_url_is_refused_and_not_logged(wsgi_http, staff_key):
    response = wsgi_http.get(f"http://testserver/v1/models?api_key={staff_key}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "api_key_in_url"
    for row in ApiRequest.objects.all():
        assert staff_key not in f"{row.route} {row.request_id}"


def test_keys_are_stored_as_digests_with_256_bits(make_key, staff):
    issued = make_key(staff)
    row = ApiKey.objects.get(pk=issued.key.pk)
    stored = " ".join(
        str(getattr(row, f.attname)) for f in ApiKey._meta.concrete_fields
    )
    assert issued.secret not in stored
    assert issued.secret.startswith(row.prefix)
    assert len(base64.urlsafe_b64decode(issued.secret[4:] + "=")) == 32


def test_empty_messages_is_bad_request_naming_the_param(staff_sdk, handbook):
    with pytest.raises(openai.BadRequestError) as caught:
        staff_sdk.chat.completions.create(model="collection:handbook", messages=[])
    assert caught.value.param == "messages"


def test_a_wrong_role_names_its_position(staff_sdk, handbook):
    with pytest.raises(openai.BadRequestError) as caught:
        staff_sdk.chat.completions.create(
            model="collection:handbook", messages=[{"role": "wizard", "content": "hi"}]
        )
    assert caught.value.param == "messages[0].role"


def test_unknown_routes_and_methods_answer_json(wsgi_http, staff_key):
    headers = {"Authorization": f"Bearer {staff_key}"}
    missing = wsgi_http.get("http://testserver/v1/nothing-here", headers=headers)
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    wrong = wsgi_http.delete("http://testserver/v1/models", headers=headers)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["message"]


def test_float_and_base64_embeddings_agree(staff_sdk, sdk, staff_key):
    as_float = staff_sdk.embeddings.create(
        model="local/all-MiniLM-L6-v2",
        input=["meal expenses", "laptops"],
        encoding_format="float",
    )
    # The SDK asks for base64 by default and decodes it itself, after
    # validation: its strict mode checks the still-encoded strings against
    # List[float] and fails against any server, OpenAI's too, so not here.
    as_base64 = sdk(staff_key, strict=False).embeddings.create(
        model="local/all-MiniLM-L6-v2", input=["meal expenses", "laptops"]
    )
    assert as_float.usage.prompt_tokens > 0
    for a, b in zip(as_float.data, as_base64.data, strict=True):
        assert len(a.embedding) == 384
        np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-6)


def test_token_array_inputs_embed_like_their_text(staff_sdk):
    from ragapp.documents.tokens import encoding

    tokens = encoding().encode("meal expenses")
    by_text = staff_sdk.embeddings.create(
        model="local/all-MiniLM-L6-v2", input="meal expenses", encoding_format="float"
    )
    by_tokens = staff_sdk.embeddings.create(
        model="local/all-MiniLM-L6-v2", input=[tokens], encoding_format="float"
    )
    np.testing.assert_allclose(
        by_text.data[0].embedding, by_tokens.data[0].embedding, rtol=1e-6
    )


def test_an_empty_embedding_input_is_a_bad_request(staff_sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        staff_sdk.embeddings.create(model="local/all-MiniLM-L6-v2", input="   ")
    assert caught.value.param == "input[0]"


def test_moderation_results_carry_all_13_categories(staff_sdk):
    result = staff_sdk.moderations.create(input=["hello there", "I will kill you"])
    assert len(result.results) == 2
    for item in result.results:
        assert set(item.categories.model_dump(by_alias=True)) == set(
            MODERATION_CATEGORIES
        )
        assert set(item.category_scores.model_dump(by_alias=True)) == set(
            MODERATION_CATEGORIES
        )
    assert result.id.startswith("modr-")


def test_every_request_is_logged_without_secrets(staff_sdk, staff_key):
    staff_sdk.models.list()
    row = ApiRequest.objects.latest("created_at")
    assert row.status == 200
    assert row.route.endswith("models")
    assert row.key is not None
