from django.db import migrations

from ragapp.runtime.operations import CreatePgvectorExtension


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [CreatePgvectorExtension()]
