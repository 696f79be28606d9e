"""Writes on users and roles."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from ragapp.accounts.roles import ADMINS_GROUP, STAFF_GROUP


def generate_password() -> str:
    """Return a random password that passes the configured validators."""
    password = secrets.token_urlsafe(18)
    validate_password(password)
    return password


@transaction.atomic
def admin_ensure(*, username: str = "admin") -> str | None:
    """Create the first admin with a generated password, if there is no admin yet.

    Return the password so the caller can show it once; only its hash is
    stored. Return None when an admin exists, so a restart never recreates
    users or resets a password someone changed. There is never a default
    password (T09).
    """
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    password = generate_password()
    user: AbstractUser = user_model.objects.create_superuser(
        username=username, email="", password=password
    )
    user.groups.add(
        Group.objects.get(name=ADMINS_GROUP), Group.objects.get(name=STAFF_GROUP)
    )
    return password


def staff_group() -> Group:
    """Return the default reader group every staff member belongs to."""
    return Group.objects.get(name=STAFF_GROUP)
