"""People in the Manage pages, and the account services' guards behind them."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from ragapp.accounts import services as accounts
from ragapp.accounts.roles import ADMINS_GROUP, STAFF_GROUP
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admins() -> Group:
    return Group.objects.get(name=ADMINS_GROUP)


@pytest.fixture
def staff() -> Group:
    return Group.objects.get(name=STAFF_GROUP)


@pytest.fixture
def alice(admins):
    """An admin by membership of Admins alone: not a superuser, no staff flag."""
    user = UserFactory(username="alice")
    user.groups.add(admins)
    return user


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


def signed_in(user) -> Client:
    other = Client()
    other.force_login(user)
    return other


# --- services ------------------------------------------------------------------------


def test_user_create_takes_a_chosen_password_or_generates_one(alice, staff):
    chosen, password = accounts.user_create(
        actor=alice, username="carol", password="a long enough passphrase 7"
    )
    assert password == "a long enough passphrase 7"
    assert chosen.check_password(password)
    assert list(chosen.groups.all()) == [staff]  # the default reader group
    generated, password = accounts.user_create(actor=alice, username="dave", groups=[])
    assert len(password) >= 20 and generated.check_password(password)
    assert not generated.groups.exists()
    assert not (generated.is_superuser or chosen.is_superuser)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": ""}, "Give the new account a username."),
        ({"username": "<script>"}, "Enter a valid username."),
        ({"username": "eve", "email": "not an email"}, "Enter a valid email address."),
        ({"username": "eve", "password": "password123"}, "too common"),
        ({"username": "eve", "password": "short"}, "at least 12 characters"),
        ({"username": "ALICE"}, "is taken"),
    ],
)
def test_user_create_refuses_bad_input_with_the_reason(alice, fields, message):
    with pytest.raises(accounts.AccountError, match=message):
        accounts.user_create(actor=alice, **fields)
    assert not User.objects.filter(username="eve").exists()


def test_only_admins_create_accounts_and_groups(staff):
    bob = UserFactory(username="bob")
    bob.groups.add(staff)
    with pytest.raises(accounts.AccountError, match="Only admins"):
        accounts.user_create(actor=bob, username="mallory")
    with pytest.raises(accounts.AccountError, match="Only admins"):
        accounts.group_create(actor=bob, name="Board")
    with pytest.raises(accounts.AccountError, match="Only admins"):
        accounts.user_set_groups(
            actor=bob, user=bob, groups=[Group.objects.get(name=ADMINS_GROUP)]
        )
    assert not bob.groups.filter(name=ADMINS_GROUP).exists()


def test_an_admin_cannot_change_a_superuser_or_lock_themselves_out(alice, staff):
    root = UserFactory(username="root", is_superuser=True)
    with pytest.raises(accounts.AccountError, match="Only a superuser"):
        accounts.user_set_groups(actor=alice, user=root, groups=[])
    with pytest.raises(accounts.AccountError, match="Only a superuser"):
        accounts.user_set_active(actor=alice, user=root, active=False)
    with pytest.raises(accounts.AccountError, match="cannot disable your own"):
        accounts.user_set_active(actor=alice, user=alice, active=False)
    with pytest.raises(accounts.AccountError, match="out of the Admins group"):
        accounts.user_set_groups(actor=alice, user=alice, groups=[staff])
    root.refresh_from_db()
    assert root.is_active and alice.is_active


def test_an_admin_cannot_hand_out_a_group_with_more_rights_than_theirs(alice, admins):
    powerful = Group.objects.create(name="User editors")
    powerful.permissions.add(Permission.objects.get(codename="change_user"))
    bob = UserFactory(username="bob")
    with pytest.raises(accounts.AccountError, match="User editors"):
        accounts.user_set_groups(actor=alice, user=alice, groups=[admins, powerful])
    with pytest.raises(accounts.AccountError, match="User editors"):
        accounts.user_create(actor=alice, username="eve", groups=[powerful])
    # Groups that only read collections, and the Admins role itself, are fine.
    readers = accounts.group_create(actor=alice, name="  Finance   team ")
    assert readers.name == "Finance team"
    accounts.user_set_groups(actor=alice, user=bob, groups=[readers, admins])
    assert set(bob.groups.all()) == {readers, admins}
    # A superuser may.
    root = UserFactory(username="root", is_superuser=True)
    accounts.user_set_groups(actor=root, user=bob, groups=[powerful])
    assert list(bob.groups.all()) == [powerful]


def test_disabling_deletes_that_users_sessions_and_no_one_elses(alice):
    bob, carol = UserFactory(username="bob"), UserFactory(username="carol")
    bob_phone, bob_laptop, carol_browser = (
        signed_in(bob),
        signed_in(bob),
        signed_in(carol),
    )
    assert Session.objects.count() == 3
    ended = accounts.user_update(actor=alice, user=bob, groups=[], active=False)
    assert ended == 2
    assert Session.objects.count() == 1
    for session in (bob_phone, bob_laptop):
        assert session.get(reverse("web:home")).status_code == 302  # signed out
    assert carol_browser.get(reverse("web:home")).status_code == 200
    # Reactivated, bob signs in again; nothing else was ended.
    assert accounts.user_update(actor=alice, user=bob, groups=[], active=True) == 0
    bob.refresh_from_db()
    assert bob.is_active


def test_user_update_saves_groups_and_enabled_flag_together_or_neither(
    alice, admins, staff
):
    with pytest.raises(accounts.AccountError, match="cannot disable your own"):
        accounts.user_update(
            actor=alice, user=alice, groups=[admins, staff], active=False
        )
    assert list(alice.groups.all()) == [admins]  # the new group was not kept


# --- the page ------------------------------------------------------------------------


def test_the_people_page_works_for_an_admin_without_superuser_rights(
    admin_client, alice, staff
):
    assert not alice.is_superuser and not alice.is_staff
    html = admin_client.get(reverse("manage:users")).content.decode()
    assert "People and groups" in html and "alice" in html
    new_account = html[html.index('id="new-user"') : html.index('id="new-group"')]
    assert f'value="{staff.pk}" id="id_groups_' in new_account
    assert re.search(rf'value="{staff.pk}"[^>]*checked', new_account)
    finance = Group.objects.create(name="Finance")

    created = admin_client.post(
        reverse("manage:users"),
        {"form": "user", "username": "carol", "groups": [staff.pk, finance.pk]},
    )
    assert created["Cache-Control"] == "no-store"
    html = created.content.decode()
    assert "shown only now" in html
    password = re.search(r'<code class="password">([^<]+)</code>', html).group(1)
    carol = User.objects.get(username="carol")
    assert carol.check_password(password)
    assert set(carol.groups.all()) == {staff, finance}

    chosen = admin_client.post(
        reverse("manage:users"),
        {"form": "user", "username": "dave", "password": "a long enough passphrase 7"},
    ).content.decode()
    assert "password you chose" in chosen and "a long enough passphrase" not in chosen
    assert User.objects.get(username="dave").check_password(
        "a long enough passphrase 7"
    )


def test_the_people_page_shows_refusals_next_to_the_form(admin_client):
    weak = admin_client.post(
        reverse("manage:users"),
        {"form": "user", "username": "eve", "password": "short"},
    ).content.decode()
    assert "at least 12 characters" in weak
    assert not User.objects.filter(username="eve").exists()
    bad = admin_client.post(
        reverse("manage:users"), {"form": "user", "username": "bad name!"}
    ).content.decode()
    assert "Enter a valid username" in bad
    admin_client.post(reverse("manage:users"), {"form": "group", "name": "Finance"})
    again = admin_client.post(
        reverse("manage:users"), {"form": "group", "name": "Finance"}
    ).content.decode()
    assert "exists already" in again
    assert Group.objects.filter(name="Finance").count() == 1


def test_an_admin_can_see_but_not_edit_a_superuser(admin_client):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    html = admin_client.get(reverse("manage:users")).content.decode()
    row = html[html.index(f'id="user-{root.pk}"') :].split("</tr>", 1)[0]
    assert "Only a superuser changes this account." in row
    assert "<form" not in row
    response = admin_client.post(
        reverse("manage:user-update", args=[root.pk]), {"groups": []}, follow=True
    )
    assert "Only a superuser can change a superuser" in response.content.decode()
    root.refresh_from_db()
    assert root.is_active


def test_disabling_and_enabling_someone_from_the_page(admin_client, staff):
    bob = UserFactory(username="bob")
    bob.groups.add(staff)
    phone = signed_in(bob)
    page = admin_client.post(
        reverse("manage:user-update", args=[bob.pk]),
        {"groups": [staff.pk]},
        follow=True,
    ).content.decode()
    assert "bob is signed out everywhere (1 session(s) ended)." in page
    assert phone.get(reverse("web:home")).status_code == 302
    admin_client.post(
        reverse("manage:user-update", args=[bob.pk]),
        {"groups": [staff.pk], "active": "on"},
    )
    bob.refresh_from_db()
    assert bob.is_active and list(bob.groups.all()) == [staff]


def test_your_own_row_cannot_disable_you(admin_client, alice):
    html = admin_client.get(reverse("manage:users")).content.decode()
    row = html[html.index(f'id="user-{alice.pk}"') :].split("</tr>", 1)[0]
    assert "you cannot disable your own account" in row
    assert 'type="checkbox" name="active"' not in row
