"""Password policy and storage; no default admin (T09)."""

import gzip
from pathlib import Path

import django
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import identify_hasher
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from ragapp.accounts.services import admin_ensure

pytestmark = pytest.mark.django_db

COMMON_PASSWORDS = Path(django.__file__).parent / "contrib/auth/common-passwords.txt.gz"


def test_every_password_on_djangos_common_list_is_rejected():
    with gzip.open(COMMON_PASSWORDS, "rt") as f:
        passwords = [line.strip() for line in f if line.strip()]
    assert len(passwords) > 19_000
    accepted = []
    for password in passwords:
        try:
            validate_password(password)
        except ValidationError:
            continue
        accepted.append(password)
    assert accepted == []


@pytest.mark.parametrize("length", [64, 128])
def test_long_passphrases_are_accepted(length):
    validate_password(("mauve lantern orbit " * 10)[:length])


def test_short_password_is_rejected_with_the_reason():
    with pytest.raises(ValidationError, match="at least 12 characters"):
        validate_password("Xk7#pq2!")


def test_passwords_are_stored_as_argon2_hashes():
    user = get_user_model().objects.create_user("hashme", password="x" * 20 + "Q9!")
    assert identify_hasher(user.password).algorithm == "argon2"
    assert "Q9!" not in user.password


def test_a_fresh_install_has_no_user_at_all():
    assert get_user_model().objects.count() == 0


def test_first_admin_gets_a_generated_password_shown_once_and_stored_hashed():
    password = admin_ensure()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)
    assert password not in admin.password
    assert password != "admin"
    validate_password(password, admin)
    assert {g.name for g in admin.groups.all()} == {"Admins", "Staff"}


def test_admin_is_not_recreated_and_its_password_not_reset():
    first = admin_ensure()
    assert admin_ensure() is None
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert get_user_model().objects.get(username="admin").check_password(first)
