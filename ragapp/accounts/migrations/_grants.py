"""Give the Admins group permissions from a data migration, on a fresh database too."""

from django.contrib.auth.management import create_permissions

ADMINS_GROUP = "Admins"


def grant(apps, permissions: tuple[str, ...]) -> None:
    # Permissions are normally made after all migrations; make them now so the
    # group can hold them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins, _ = Group.objects.get_or_create(name=ADMINS_GROUP)
    for dotted in permissions:
        app_label, codename = dotted.split(".")
        admins.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def revoke(apps, permissions: tuple[str, ...]) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins = Group.objects.filter(name=ADMINS_GROUP).first()
    if admins is None:
        return
    for dotted in permissions:
        app_label, codename = dotted.split(".")
        admins.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            )
        )
