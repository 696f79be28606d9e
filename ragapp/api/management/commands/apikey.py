"""`manage.py apikey create|list|revoke`: API keys for operators and scripts.

`create` prints the new key alone on the last line of stdout, so
`KEY=$(manage.py apikey create --user admin | tail -1)` works in a script.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ragapp.api.keys import apikey_create, apikey_revoke
from ragapp.api.models import ApiKey
from ragapp.documents.models import Collection


class Command(BaseCommand):
    help = "Create, list or revoke API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Issue a key; it is printed once.")
        create.add_argument("--user", required=True, help="Username the key acts as.")
        create.add_argument("--name", default="", help="A label to tell keys apart.")
        create.add_argument(
            "--collections",
            nargs="+",
            default=[],
            metavar="SLUG",
            help="Limit the key to these collections (default: all the user reads).",
        )
        create.add_argument("--read-only", action="store_true")
        create.add_argument(
            "--expires-days", type=int, default=None, help="Days until it expires."
        )
        listing = actions.add_parser("list", help="List keys (prefixes only).")
        listing.add_argument("--user", default=None)
        revoke = actions.add_parser("revoke", help="Revoke a key by its prefix.")
        revoke.add_argument("prefix")

    def handle(self, *args: object, **options: object) -> None:
        action = options["action"]
        if action == "create":
            self._create(options)
        elif action == "list":
            self._list(options)
        else:
            self._revoke(str(options["prefix"]))

    def _create(self, options: dict) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user {options['user']!r}.")
        slugs = list(options["collections"])
        collections = list(Collection.objects.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {c.slug for c in collections})
        if missing:
            raise CommandError(f"No collection with slug {', '.join(missing)}.")
        days = options["expires_days"]
        issued = apikey_create(
            user=user,
            name=str(options["name"]) or "command line",
            collections=collections,
            read_only=bool(options["read_only"]),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        if slugs and issued.key.collections.count() != len(collections):
            self.stderr.write(
                "Some collections were left out: the user cannot read them."
            )
        self.stderr.write(
            f"Key {issued.key.prefix}… for {user.get_username()}; "
            "it is shown once, below. Store it now."
        )
        self.stdout.write(issued.secret)

    def _list(self, options: dict) -> None:
        keys = ApiKey.objects.select_related("user").order_by(
            "user__username", "-created_at"
        )
        if options["user"]:
            keys = keys.filter(user__username=options["user"])
        for key in keys:
            state = (
                "revoked"
                if key.revoked_at
                else ("usable" if key.is_usable else "expired")
            )
            self.stdout.write(
                f"{key.prefix}…  {key.user.get_username():20}  {state:8}  {key.name}"
            )

    def _revoke(self, prefix: str) -> None:
        keys = list(ApiKey.objects.filter(prefix__startswith=prefix, revoked_at=None))
        if len(keys) != 1:
            raise CommandError(
                f"{len(keys)} usable keys start with {prefix!r}; give a longer prefix."
            )
        apikey_revoke(key=keys[0])
        self.stdout.write(f"Revoked {keys[0].prefix}….")
