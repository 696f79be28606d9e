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


class AccountError(ValueError):
    """An account change that is not allowed; str() says why, for the admin."""


def _guard(*, actor: AbstractUser, target: AbstractUser) -> None:
    if target.is_superuser and not actor.is_superuser:
        raise AccountError("Only a superuser can change a superuser's account.")


@transaction.atomic
def user_create(
    *,
    actor: AbstractUser,
    username: str,
    email: str = "",
    groups: list[Group] | None = None,
) -> tuple[AbstractUser, str]:
    """Create a person with a generated password; return them and the password.

    The password is shown once to the admin who made the account, stored
    only as a hash, never a superuser (only superusers make superusers).
    """
    user_model = get_user_model()
    username = username.strip()
    if not username:
        raise AccountError("Give the new account a username.")
    if user_model.objects.filter(username__iexact=username).exists():
        raise AccountError(f"The username “{username}” is taken.")
    password = generate_password()
    user = user_model.objects.create_user(
        username=username, email=email.strip(), password=password
    )
    user.groups.set(groups if groups is not None else [staff_group()])
    return user, password


@transaction.atomic
def user_set_groups(
    *, actor: AbstractUser, user: AbstractUser, groups: list[Group]
) -> None:
    """Set which groups `user` belongs to (and so which collections they read)."""
    _guard(actor=actor, target=user)
    if (
        user.pk == actor.pk
        and not actor.is_superuser
        and not any(g.name == ADMINS_GROUP for g in groups)
    ):
        raise AccountError("You cannot take yourself out of the Admins group.")
    user.groups.set(groups)


@transaction.atomic
def user_set_active(*, actor: AbstractUser, user: AbstractUser, active: bool) -> None:
    """Enable or disable an account; disabling ends every session it holds (T04).

    Its live answers stop at the next heartbeat and its open streams within
    seconds (ragapp.answers.runner, ragapp.web.streams).
    """
    _guard(actor=actor, target=user)
    if user.pk == actor.pk and not active:
        raise AccountError("You cannot disable your own account.")
    user.is_active = active
    user.save(update_fields=["is_active"])
    if not active:
        sessions_end(user=user)


def sessions_end(*, user: AbstractUser) -> int:
    """Delete every database session signed in as `user`; return how many."""
    from django.contrib.sessions.models import Session

    ended = 0
    for session in Session.objects.all().iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


def group_create(*, name: str) -> Group:
    name = " ".join(name.split())[:150]
    if not name:
        raise AccountError("Give the group a name.")
    group, created = Group.objects.get_or_create(name=name)
    if not created:
        raise AccountError(f"The group “{name}” exists already.")
    return group
