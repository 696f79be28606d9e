from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Roles on top of Django's users and groups, login, the first admin."""

    name = "ragapp.accounts"
    label = "accounts"
    verbose_name = "Accounts"
