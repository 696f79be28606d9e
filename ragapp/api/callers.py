"""Who is calling: a user through one of their keys, and what that key narrows.

Every API route works as the key's user, through the same selectors and
services as the web pages, so an API request can never see more than the user
could in the browser. The key only takes away: a collection scope and
read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from ragapp.api.exceptions import PermissionDeniedError
from ragapp.api.models import ApiKey
from ragapp.documents.models import Collection
from ragapp.documents.selectors import collection_ids_readable


@dataclass
class Caller:
    user: AbstractBaseUser
    key: ApiKey
    _scope: list[int] | None = field(default=None, init=False, repr=False)
    _scope_loaded: bool = field(default=False, init=False, repr=False)

    @property
    def key_scope(self) -> list[int] | None:
        """The key's collections, or None when it may use all the user's."""
        if not self._scope_loaded:
            ids = sorted(self.key.collections.values_list("pk", flat=True))
            self._scope = ids or None
            self._scope_loaded = True
        return self._scope

    def scope(self, wanted: Iterable[int] | None = None) -> list[int] | None:
        """The collection ids to hand a search or an answer, `wanted` narrowed
        by the key; None means every collection the user may read. The
        services intersect it with the user's access again, inside the query.
        """
        allowed = self.key_scope
        if wanted is None:
            return allowed
        wanted = list(wanted)
        if allowed is None:
            return wanted
        return [pk for pk in wanted if pk in set(allowed)]

    def collections(self) -> QuerySet[Collection]:
        """The collections this caller may read: the user's, narrowed by the key."""
        readable = Collection.objects.filter(
            pk__in=collection_ids_readable(user=self.user)
        )
        if self.key_scope is not None:
            readable = readable.filter(pk__in=self.key_scope)
        return readable

    def require_write(self, permission: str) -> None:
        """Refuse a change a read-only key or the user's role does not allow."""
        if self.key.read_only:
            raise PermissionDeniedError(
                _("This API key is read-only; it may search and ask, not change.")
            )
        if not self.user.has_perm(permission):
            raise PermissionDeniedError(
                _("Your account may not do this; ask an administrator.")
            )
