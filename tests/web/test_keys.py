"""Each user's own API keys page: a secret shown once, scopes, revoking."""

from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from ragapp.api.keys import apikey_authenticate, apikey_create, digest
from ragapp.api.limits import _month
from ragapp.api.models import ApiKey, TokenSpend
from tests.factories import CollectionFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"rag_[A-Za-z0-9_-]{43}")
KEYS = "/keys/"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def handbook(staff_group):
    collection = CollectionFactory(name="Handbook", slug="handbook")
    collection.reader_groups.add(staff_group)
    return collection


@pytest.fixture
def secrets_room():
    """A collection only its own group reads: staff must never be offered it."""
    collection = CollectionFactory(name="Board minutes", slug="board")
    collection.reader_groups.add(Group.objects.create(name="Board"))
    return collection


@pytest.fixture
def reader_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


def create(client: Client, **fields):
    data = {"name": "Laptop script", "expires_in": "", **fields}
    return client.post(KEYS, data)


def test_the_page_asks_anonymous_visitors_to_sign_in(client):
    response = client.get(KEYS)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_the_header_links_to_the_keys_page(reader_client):
    page = reader_client.get(reverse("web:home")).content.decode()
    assert f'href="{KEYS}">API keys</a>' in page


def test_creating_shows_the_secret_once_and_stores_only_its_digest(
    reader_client, staff_user, caplog
):
    caplog.set_level(logging.DEBUG)
    response = create(reader_client)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    secrets = set(SECRET.findall(page))
    assert len(secrets) == 1, secrets
    (secret,) = secrets
    assert "it will not be shown again" in page

    key = ApiKey.objects.get(user=staff_user)
    assert key.digest == digest(secret)
    assert key.prefix == secret[:12]
    assert apikey_authenticate(secret) == key
    stored = [str(v) for v in ApiKey.objects.filter(pk=key.pk).values().get().values()]
    assert not any(secret in value for value in stored)
    assert secret not in caplog.text

    later = reader_client.get(KEYS).content.decode()
    assert secret not in later
    assert not SECRET.search(later)
    assert f"{key.prefix}…" in later


def test_the_htmx_create_answers_with_the_fragment_holding_the_secret(reader_client):
    response = reader_client.post(
        KEYS, {"name": "CI", "expires_in": "30"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="keys-body">')
    assert "<html" not in page
    assert len(SECRET.findall(page)) == 1
    assert response["Cache-Control"] == "no-store"


def test_the_list_shows_scope_access_expiry_spend_and_state(
    reader_client, staff_user, handbook
):
    everything = apikey_create(user=staff_user, name="Everything").key
    scoped = apikey_create(
        user=staff_user, name="Scoped", collections=[handbook], read_only=True
    ).key
    TokenSpend.objects.create(key=scoped, user=staff_user, month=_month(), tokens=1234)
    revoked = apikey_create(user=staff_user, name="Old").key
    reader_client.post(reverse("web:key-revoke", args=[revoked.pk]))

    page = reader_client.get(KEYS).content.decode()
    rows = {
        key.pk: page.split(f'id="key-{key.pk}"')[1].split("</tr>")[0]
        for key in (everything, scoped, revoked)
    }
    assert "All your collections" in rows[everything.pk]
    assert "read-write" in rows[everything.pk]
    assert "never" in rows[everything.pk]
    assert "usable" in rows[everything.pk]
    assert "Handbook" in rows[scoped.pk]
    assert "read-only" in rows[scoped.pk]
    assert "1234 of" in rows[scoped.pk]
    assert "revoked" in rows[revoked.pk]
    assert "Revoke…" not in rows[revoked.pk]


def test_an_expiry_choice_sets_the_date_and_an_unknown_one_is_refused(
    reader_client, staff_user
):
    create(reader_client, name="Quarterly", expires_in="90")
    key = ApiKey.objects.get(user=staff_user)
    assert 89 <= (key.expires_at - key.created_at).days <= 90
    response = create(reader_client, name="Forever", expires_in="10000")
    assert "Select a valid choice" in response.content.decode()
    assert ApiKey.objects.filter(user=staff_user).count() == 1


def test_the_scope_offers_only_readable_collections(
    reader_client, handbook, secrets_room
):
    page = reader_client.get(KEYS).content.decode()
    assert f'value="{handbook.pk}"' in page
    assert "Handbook" in page
    assert f'value="{secrets_room.pk}"' not in page
    assert "Board minutes" not in page


def test_a_forged_unreadable_collection_never_reaches_the_key(
    reader_client, staff_user, handbook, secrets_room
):
    """Refused outright: dropping it would widen a one-collection key to all."""
    response = create(reader_client, collections=[handbook.pk, secrets_room.pk])
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not SECRET.search(response.content.decode())
    assert not ApiKey.objects.filter(user=staff_user).exists()

    create(reader_client, collections=[handbook.pk])
    key = ApiKey.objects.get(user=staff_user)
    assert list(key.collections.all()) == [handbook]


def test_revoking_asks_first_and_needs_a_post(reader_client, staff_user):
    key = apikey_create(user=staff_user, name="CI").key
    url = reverse("web:key-revoke", args=[key.pk])
    confirm = reader_client.get(url)
    assert confirm.status_code == 200
    assert "Revoke “CI”?" in confirm.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None

    response = reader_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == f"{KEYS}#key-{key.pk}"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert not key.is_usable


def test_revoking_without_the_csrf_token_is_refused(staff_user):
    key = apikey_create(user=staff_user, name="CI").key
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post(reverse("web:key-revoke", args=[key.pk]))
    assert response.status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_someone_elses_key_is_not_found(reader_client):
    other = UserFactory(username="mallory")
    key = apikey_create(user=other, name="Theirs").key
    url = reverse("web:key-revoke", args=[key.pk])
    assert reader_client.get(url).status_code == 404
    assert reader_client.post(url).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert "Theirs" not in reader_client.get(KEYS).content.decode()


def test_the_use_it_snippet_names_this_sites_v1(reader_client, handbook):
    page = reader_client.get(KEYS).content.decode()
    snippet = page.split('<pre class="snippet"><code>')[1].split("</code></pre>")[0]
    assert snippet.splitlines() == [
        "from openai import OpenAI",
        'client = OpenAI(base_url="http://testserver/v1", api_key="rag_…")',
        'reply = client.chat.completions.create(model="collection:handbook",',
        '    messages=[{"role": "user", "content": "What is our travel policy?"}])',
        "print(reply.choices[0].message.content)",
    ]
