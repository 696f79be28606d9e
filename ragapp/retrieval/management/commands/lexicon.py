"""`manage.py lexicon [--rebuild] [SLUG...]`: check or recount BM25's statistics."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ragapp.documents.selectors import collections_by_slug
from ragapp.retrieval.lexicon import lexicon_drift, lexicon_rebuild


class Command(BaseCommand):
    help = (
        "Compare each collection's BM25 term statistics with a recount of its "
        "searchable chunks; --rebuild replaces them with the recount."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="collections (default: all)")
        parser.add_argument("--rebuild", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        collections, missing = collections_by_slug(options["slugs"])
        if missing:
            raise CommandError(f"No collection with the slug(s) {missing}.")
        drifted = 0
        for collection in collections:
            if options["rebuild"]:
                with transaction.atomic():
                    lexicon_rebuild(collection_id=collection.pk)
                self.stdout.write(f"{collection.slug}: recounted")
                continue
            drift = lexicon_drift(collection_id=collection.pk)
            if drift:
                drifted += 1
                sample = ", ".join(
                    f"{what} kept {kept} counted {counted}"
                    for what, (kept, counted) in list(drift.items())[:5]
                )
                self.stdout.write(
                    f"{collection.slug}: {len(drift)} figures differ ({sample}); "
                    "run with --rebuild"
                )
            else:
                self.stdout.write(f"{collection.slug}: in step")
        if drifted:
            raise CommandError(f"{drifted} collection(s) out of step.")
