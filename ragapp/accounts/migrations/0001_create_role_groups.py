from django.contrib.auth.management import create_permissions
from django.db import migrations

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
    # Permissions are normally made after all migrations; make them now so the
    # group can hold them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins, _ = Group.objects.get_or_create(name=ADMINS_GROUP)
    Group.objects.get_or_create(name=STAFF_GROUP)
    for dotted in ADMIN_PERMISSIONS:
        app_label, codename = dotted.split(".")
        admins.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


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
