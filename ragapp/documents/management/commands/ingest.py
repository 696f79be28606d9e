"""`manage.py ingest SLUG PATH...`: upload files from the server's disk in bulk."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ragapp.documents import ingestion, services
from ragapp.documents.models import Collection, Document


class Command(BaseCommand):
    help = (
        "Upload files (or every file under directories) into a collection. The "
        "running workers index them; --now indexes them in this process instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("collection", help="slug of the collection")
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--now",
            action="store_true",
            help="parse and embed here, without the workers (one file at a time)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            collection = Collection.objects.get(slug=options["collection"])
        except Collection.DoesNotExist:
            raise CommandError(
                f"No collection with the slug {options['collection']!r}; create it "
                "in the admin first."
            ) from None
        files = list(_files(options["paths"]))
        if not files:
            raise CommandError("No files found under the given paths.")
        counts = {"queued": 0, "known": 0, "refused": 0}
        for path in files:
            outcome = services.document_upload_path(collection=collection, path=path)
            document = outcome.document
            if not outcome.created:
                counts["known"] += 1
            elif document.status == Document.Status.FAILED:
                counts["refused"] += 1
            else:
                counts["queued"] += 1
                if options["now"]:
                    ingestion.document_ingest(document_id=document.pk)
                    document.refresh_from_db()
            self.stdout.write(f"{path}: {_describe(outcome, document)}")
        self.stdout.write(
            f"{len(files)} files: {counts['queued']} new, {counts['known']} already "
            f"in {collection.name!r}, {counts['refused']} refused."
        )


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{path} is neither a file nor a directory.")
    return found


def _describe(outcome: services.UploadOutcome, document: Document) -> str:
    if not outcome.created:
        return f"already in the collection as {document.title!r}"
    if document.status == Document.Status.FAILED:
        return f"refused or failed: {document.error_message}"
    return document.get_status_display().lower()
