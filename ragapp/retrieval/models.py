"""Term statistics for BM25, kept per collection beside the chunks they describe.

BM25 needs, for the collections a query searches, the number of searchable
chunks, their total length and each term's chunk frequency. Counting those
at query time scans every posting of common terms; instead they are kept up
to date in the same transaction that makes a document version searchable
(or deletes it), and summed over the collections in a query's scope. Only the
scope's collections count, so a tenant's scores never depend on (and never
reveal) what another tenant's documents contain.
"""

from django.db import models

from ragapp.documents.models import Collection


class CollectionLexicon(models.Model):
    """Totals over a collection's searchable chunks."""

    collection = models.OneToOneField(
        Collection, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    chunk_count = models.BigIntegerField(default=0)
    length_total = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.collection_id}: {self.chunk_count} chunks"


class LexiconTerm(models.Model):
    """How many of a collection's searchable chunks contain a term (its lexeme)."""

    pk = models.CompositePrimaryKey("collection", "lexeme")
    # The primary key's index leads with the collection; no second index.
    collection = models.ForeignKey(
        Collection, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    lexeme = models.TextField()
    chunk_count = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.collection_id}: {self.lexeme} in {self.chunk_count}"
