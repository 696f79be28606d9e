"""Index headings with the text and derive each chunk's length in terms (for BM25).

PostgreSQL cannot alter a generated column's expression, so `search_vector` is
dropped and added again; its GIN index goes and comes back with it.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models

TSVECTOR_LENGTH = """
CREATE OR REPLACE FUNCTION ragapp_tsvector_length(tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer
    FROM unnest($1)
$$
"""


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0002_ingestion_state"),
    ]

    operations = [
        # Terms counted with repeats (a tsvector keeps a position per
        # occurrence), stop words excluded: BM25's document length.
        migrations.RunSQL(
            TSVECTOR_LENGTH, "DROP FUNCTION IF EXISTS ragapp_tsvector_length(tsvector)"
        ),
        migrations.RemoveIndex(model_name="chunk", name="chunk_search_vector_gin"),
        migrations.RemoveField(model_name="chunk", name="search_vector"),
        migrations.AddField(
            model_name="chunk",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.contrib.postgres.search.SearchVector(
                    "heading", "text", config="english"
                ),
                output_field=django.contrib.postgres.search.SearchVectorField(),
            ),
        ),
        migrations.AddField(
            model_name="chunk",
            name="search_length",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Func(
                    django.contrib.postgres.search.SearchVector(
                        "heading", "text", config="english"
                    ),
                    function="ragapp_tsvector_length",
                ),
                output_field=models.PositiveIntegerField(),
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["search_vector"], name="chunk_search_vector_gin"
            ),
        ),
    ]
