from django.db import migrations

from ragapp.accounts.migrations import _grants

# Admins audit what was asked and answered, and every moderation decision.
ADDED_PERMISSIONS = (
    "answers.view_thread",
    "answers.view_message",
    "answers.view_citation",
    "moderation.view_moderationcheck",
)


def grant(apps, schema_editor):
    _grants.grant(apps, ADDED_PERMISSIONS)


def revoke(apps, schema_editor):
    _grants.revoke(apps, ADDED_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_create_role_groups"),
        ("answers", "0001_threads_messages_citations"),
        ("moderation", "0001_moderation_checks"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
