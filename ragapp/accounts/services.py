"""Writes on users and roles."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from ragapp.accounts.roles import ADMINS_GROUP, STAFF_GROUP, is_admin


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


def _guard_actor(actor: AbstractUser) -> None:
    if not is_admin(actor):
        raise AccountError("Only admins manage accounts and groups.")


def _guard(*, actor: AbstractUser, target: AbstractUser) -> None:
    _guard_actor(actor)
    if target.is_superuser and not actor.is_superuser:
        raise AccountError("Only a superuser can change a superuser's account.")


def _guard_groups(*, actor: AbstractUser, changed: set[Group]) -> None:
    """Refuse membership changes of groups carrying permissions `actor` lacks.

    Membership is how permissions are given: an admin who could put anyone
    (themselves included) into a group a superuser made with more rights
    than the Admins role would hold those rights too.
    """
    if actor.is_superuser:
        return
    held = actor.get_all_permissions()
    for group in sorted(changed, key=lambda g: g.name):
        carried = {
            f"{app_label}.{codename}"
            for app_label, codename in group.permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        if not carried <= held:
            raise AccountError(
                f"Only a superuser can change who is in \u201c{group.name}\u201d: "
                "it carries permissions the Admins role does not have."
            )


def _messages(error: ValidationError) -> str:
    return " ".join(error.messages)


@transaction.atomic
def user_create(
    *,
    actor: AbstractUser,
    username: str,
    email: str = "",
    password: str = "",
    groups: list[Group] | None = None,
) -> tuple[AbstractUser, str]:
    """Create a person; return them and their initial password.

    An empty `password` is generated. Either way it is shown once to the
    admin who made the account and stored only as a hash. The account is
    never a superuser (only superusers make superusers); `groups` None
    means the Staff group.
    """
    _guard_actor(actor)
    user_model = get_user_model()
    username = username.strip()
    email = email.strip()
    if not username:
        raise AccountError("Give the new account a username.")
    try:
        user_model.username_validator(username)
        if email:
            validate_email(email)
    except ValidationError as exc:
        raise AccountError(_messages(exc)) from None
    if user_model.objects.filter(username__iexact=username).exists():
        raise AccountError(f"The username \u201c{username}\u201d is taken.")
    groups = groups if groups is not None else [staff_group()]
    _guard_groups(actor=actor, changed=set(groups))
    user = user_model(username=username, email=email)
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise AccountError(_messages(exc)) from None
    else:
        password = generate_password()
    user.set_password(password)
    user.save()
    user.groups.set(groups)
    return user, password


@transaction.atomic
def user_set_groups(
    *, actor: AbstractUser, user: AbstractUser, groups: list[Group]
) -> None:
    """Set which groups `user` belongs to (and so which collections they read)."""
    _guard(actor=actor, target=user)
    _guard_groups(actor=actor, changed=set(user.groups.all()) ^ set(groups))
    if (
        user.pk == actor.pk
        and not actor.is_superuser
        and not any(g.name == ADMINS_GROUP for g in groups)
    ):
        raise AccountError("You cannot take yourself out of the Admins group.")
    user.groups.set(groups)


@transaction.atomic
def user_set_active(*, actor: AbstractUser, user: AbstractUser, active: bool) -> int:
    """Enable or disable an account; disabling ends every session it holds (T04).

    Return how many sessions were ended.

    Its live answers stop at the next heartbeat and its open streams within
    seconds (ragapp.answers.runner, ragapp.web.streams).
    """
    _guard(actor=actor, target=user)
    if user.pk == actor.pk and not active:
        raise AccountError("You cannot disable your own account.")
    user.is_active = active
    user.save(update_fields=["is_active"])
    return 0 if active else sessions_end(user=user)


@transaction.atomic
def user_update(
    *, actor: AbstractUser, user: AbstractUser, groups: list[Group], active: bool
) -> int:
    """Set `user`'s groups and enabled flag at once: both are saved, or neither.

    Return how many sessions were ended (disabling signs them out everywhere).
    """
    user_set_groups(actor=actor, user=user, groups=groups)
    return user_set_active(actor=actor, user=user, active=active)


def sessions_end(*, user: AbstractUser) -> int:
    """Delete every database session signed in as `user`; return how many."""
    from django.contrib.sessions.models import Session

    ended = 0
    for session in Session.objects.all().iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


@transaction.atomic
def group_create(*, actor: AbstractUser, name: str) -> Group:
    """Create a group without permissions: a set of readers for collections."""
    _guard_actor(actor)
    name = " ".join(name.split())[:150]
    if not name:
        raise AccountError("Give the group a name.")
    group, created = Group.objects.get_or_create(name=name)
    if not created:
        raise AccountError(f"The group “{name}” exists already.")
    return group
