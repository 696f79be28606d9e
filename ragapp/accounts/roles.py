"""The two roles, as Django groups.

Admins upload and manage collections (and use the Django admin); staff ask
questions in the collections whose reader groups they belong to. Which staff
read which collection is decided per collection by its reader groups, so
"Staff" is just the default reader group, not a permission.
"""

ADMINS_GROUP = "Admins"
STAFF_GROUP = "Staff"

# Model permissions the Admins group carries, as "app_label.codename".
ADMIN_PERMISSIONS: tuple[str, ...] = (
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
    "answers.view_feedback",
    "answers.view_conversationread",
    "moderation.view_moderationcheck",
)


def is_admin(user: object) -> bool:
    """Whether `user` may use the Manage pages: a superuser or an Admins member."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=ADMINS_GROUP).exists()
