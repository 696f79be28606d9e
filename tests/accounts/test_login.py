"""Signing in, and seeing only the collections one's groups may read."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ragapp.accounts.roles import ADMIN_PERMISSIONS
from ragapp.documents.selectors import collection_list_readable
from tests.factories import TEST_PASSWORD, CollectionFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_login_page_renders_with_csrf_and_csp_nonce(client):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content
    nonce = response.wsgi_request.csp_nonce
    assert f'nonce="{nonce}"'.encode() in response.content
    assert f"'nonce-{nonce}'" in response.headers["Content-Security-Policy"]


def test_staff_member_signs_in_and_lands_on_their_collections(client, staff_user):
    response = client.post(
        reverse("accounts:login"),
        {"username": "reader", "password": TEST_PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("web:home")
    assert b"Your collections" in response.content


def test_wrong_password_is_refused_with_a_message(client, staff_user):
    response = client.post(
        reverse("accounts:login"), {"username": "reader", "password": "nope" * 4}
    )
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_login_without_csrf_token_is_refused(staff_user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        reverse("accounts:login"), {"username": "reader", "password": TEST_PASSWORD}
    )
    assert response.status_code == 403


def test_home_requires_sign_in(client):
    response = client.get(reverse("web:home"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_logout_is_post_only_and_ends_the_session(client, staff_user):
    client.force_login(staff_user)
    assert client.get(reverse("accounts:logout")).status_code == 405
    client.post(reverse("accounts:logout"))
    assert "_auth_user_id" not in client.session


def test_readers_see_only_collections_shared_with_their_groups(client, staff_user):
    shared = CollectionFactory(name="Handbook")
    shared.reader_groups.add(Group.objects.get(name="Staff"))
    CollectionFactory(name="Board minutes").reader_groups.add(
        Group.objects.create(name="Board")
    )
    client.force_login(staff_user)
    page = client.get(reverse("web:home")).content.decode()
    assert "Handbook" in page
    assert "Board minutes" not in page


def test_admin_role_and_superusers_read_every_collection(admin_user):
    CollectionFactory(name="A")
    CollectionFactory(name="B")
    collection_admin = UserFactory(username="curator", is_staff=True)
    collection_admin.groups.add(Group.objects.get(name="Admins"))
    assert collection_list_readable(user=admin_user).count() == 2
    assert collection_list_readable(user=collection_admin).count() == 2


def test_inactive_and_anonymous_users_read_nothing(staff_user):
    from django.contrib.auth.models import AnonymousUser

    CollectionFactory().reader_groups.add(Group.objects.get(name="Staff"))
    staff_user.is_active = False
    assert collection_list_readable(user=staff_user).count() == 0
    assert collection_list_readable(user=AnonymousUser()).count() == 0


def test_admins_group_holds_exactly_the_role_permissions():
    admins = Group.objects.get(name="Admins")
    held = {
        f"{p.content_type.app_label}.{p.codename}" for p in admins.permissions.all()
    }
    assert held == set(ADMIN_PERMISSIONS)


def test_role_migration_and_roles_module_agree():
    import importlib

    first = importlib.import_module(
        "ragapp.accounts.migrations.0001_create_role_groups"
    )
    added = importlib.import_module(
        "ragapp.accounts.migrations.0002_admins_see_answers_and_checks"
    )
    audited = importlib.import_module(
        "ragapp.accounts.migrations.0003_admins_read_conversations_only_audited"
    )
    granted = set(first.ADMIN_PERMISSIONS) | set(added.ADDED_PERMISSIONS)
    granted = granted - set(audited.REVOKED_PERMISSIONS) | set(
        audited.ADDED_PERMISSIONS
    )
    assert granted == set(ADMIN_PERMISSIONS)


# --- T06: sign-in throttling ------------------------------------------------------


def _fail(client, username="reader", ip="10.1.2.3", **extra):
    return client.post(
        reverse("accounts:login"),
        {"username": username, "password": "wrong password"},
        REMOTE_ADDR=ip,
        **extra,
    )


def test_ten_failed_sign_ins_from_one_address_are_throttled_with_retry_after(
    client, staff_user, settings
):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _fail(client).status_code == 200
    locked = _fail(client)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert "Too many failed sign-ins" in locked.content.decode()
    # Even the right password waits out the cool-off from that address...
    right = client.post(
        reverse("accounts:login"),
        {"username": "reader", "password": TEST_PASSWORD},
        REMOTE_ADDR="10.1.2.3",
    )
    assert right.status_code == 429
    # ...while the same person signs in from another address.
    other = client.post(
        reverse("accounts:login"),
        {"username": "reader", "password": TEST_PASSWORD},
        REMOTE_ADDR="10.9.9.9",
    )
    assert other.status_code == 302


def test_a_spoofed_forwarded_for_header_does_not_reset_the_count(client, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _fail(client, username=f"user{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert _fail(client, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 429
