from django.db import migrations

from ragapp.accounts.migrations import _grants

# Admins read staff conversations only through the product's audited view
# (every read leaves a ConversationRead row), not through the Django admin.
REVOKED_PERMISSIONS = (
    "answers.view_thread",
    "answers.view_message",
    "answers.view_citation",
)
# They see feedback and the read log itself.
ADDED_PERMISSIONS = ("answers.view_feedback", "answers.view_conversationread")


def forwards(apps, schema_editor):
    _grants.revoke(apps, REVOKED_PERMISSIONS)
    _grants.grant(apps, ADDED_PERMISSIONS)


def backwards(apps, schema_editor):
    _grants.revoke(apps, ADDED_PERMISSIONS)
    _grants.grant(apps, REVOKED_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_admins_see_answers_and_checks"),
        ("answers", "0002_feedback_reads_withheld_heartbeat"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
