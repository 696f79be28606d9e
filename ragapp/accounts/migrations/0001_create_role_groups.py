from django.db import migrations

from ragapp.accounts.migrations import _grants

ADMINS_GROUP = "Admins"
STAFF_GROUP = "Staff"
ADMIN_PERMISSIONS = (
    "documents.add_collection",
    "documents.change_collection",
    "documents.delete_collection",
    "documents.view_collection",
    "documents.add_document",
    "documents.change_document",
    "documents.delete_document",
    "documents.view_document",
    "documents.view_chunk",
    "auth.view_group",
    "auth.view_user",
)


def create_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=STAFF_GROUP)
    _grants.grant(apps, ADMIN_PERMISSIONS)


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=[ADMINS_GROUP, STAFF_GROUP]
    ).delete()


class Migration(migrations.Migration):
    initial = True
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("documents", "0001_collections_documents_chunks"),
    ]
    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
