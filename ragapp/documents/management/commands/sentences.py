"""`manage.py sentences [--check] [SLUG...]`: keep sentence vectors where they are missing."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ragapp.documents import ingestion
from ragapp.documents.models import Collection
from ragapp.documents.selectors import collections_by_slug
from ragapp.providers.exceptions import ProviderError


class Command(BaseCommand):
    help = (
        "Embed and keep the sentence vectors of searchable passages indexed "
        "without them (before ragapp kept them, or with RAGAPP_INDEX_SENTENCES "
        "off), without parsing the files again; --check only counts them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="collections (default: all)")
        parser.add_argument(
            "--check", action="store_true", help="count, change nothing"
        )
        parser.add_argument("--batch-size", type=int, default=64)

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["check"] and not settings.INDEX_SENTENCES:
            raise CommandError(
                "RAGAPP_INDEX_SENTENCES is off, so sentence vectors are not kept; "
                "turn it on first."
            )
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        collections, missing = collections_by_slug(options["slugs"])
        if missing:
            raise CommandError(f"No collection with the slug(s) {missing}.")
        for collection in collections:
            try:
                self._collection(collection, options)
            except ProviderError as exc:
                raise CommandError(
                    f"{collection.slug}: the embedding model {collection.embedding_model!r} "
                    f"failed ({exc}); what was done so far is kept, run again to resume."
                ) from exc

    def _collection(self, collection: Collection, options: dict[str, Any]) -> None:
        if options["check"]:
            count = ingestion.sentences_missing(collection).count()
            self.stdout.write(f"{collection.slug}: {count} passages without sentences")
            return

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"{collection.slug}: {done}/{total} passages")

        chunks, sentences = ingestion.sentences_backfill(
            collection, batch_size=options["batch_size"], progress=progress
        )
        self.stdout.write(
            f"{collection.slug}: kept {sentences} sentences of {chunks} passages"
        )
