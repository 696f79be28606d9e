"""Admins manage collections in the Django admin; staff cannot get in."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ragapp.documents.models import Collection
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_admin_creates_a_collection_with_reader_groups(client, admin_user):
    client.force_login(admin_user)
    staff = Group.objects.get(name="Staff")
    response = client.post(
        reverse("admin:documents_collection_add"),
        {
            "name": "Security policies",
            "slug": "security-policies",
            "description": "What IT expects of everyone.",
            "reader_groups": [staff.pk],
            "embedding_model": "local/all-MiniLM-L6-v2",
            "embedding_dimensions": 384,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    collection = Collection.objects.get(slug="security-policies")
    assert collection.created_by == admin_user
    assert list(collection.reader_groups.all()) == [staff]
    assert collection.embedding_dimensions == 384


def test_collection_admin_role_can_use_the_admin(client):
    curator = UserFactory(username="curator", is_staff=True)
    curator.groups.add(Group.objects.get(name="Admins"))
    client.force_login(curator)
    assert client.get(reverse("admin:documents_collection_add")).status_code == 200
    assert client.get(reverse("admin:auth_user_add")).status_code == 403


def test_staff_member_cannot_reach_the_admin(client, staff_user):
    client.force_login(staff_user)
    response = client.get(reverse("admin:documents_collection_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response.url


def test_admin_pages_for_documents_and_chunks_render(client, admin_user):
    client.force_login(admin_user)
    for name in ("documents_document", "documents_chunk", "documents_collection"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200
