"""Forms of the admins' pages: they parse input; the services decide and save."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ragapp.accounts.roles import STAFF_GROUP
from ragapp.documents.models import Collection
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS

LOCAL_PREFIX = "local/"


def embedding_model_choices(current: str = "") -> list[tuple[str, str]]:
    """The embedding models a collection may use here, each saying where it runs.

    Local models always; models of the OpenAI-format API only when one is
    configured (without it their documents could only fail); the configured
    default and the collection's `current` model always, so saving a
    collection never changes its model by accident.
    """
    api = bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)
    names = [m for m in EMBEDDING_DIMENSIONS if api or m.startswith(LOCAL_PREFIX)]
    for extra in (settings.EMBEDDING_MODEL, current):
        if extra and extra not in names:
            names.append(extra)
    choices = []
    for name in names:
        where = _("runs here") if name.startswith(LOCAL_PREFIX) else _("model API")
        dims = EMBEDDING_DIMENSIONS.get(name) or settings.EMBEDDING_DIMENSIONS
        label = f"{name} ({where}, {dims} dimensions)" if dims else f"{name} ({where})"
        if name == settings.EMBEDDING_MODEL:
            label += " \u2014 " + str(_("the default"))
        choices.append((name, label))
    return choices


class CollectionForm(forms.Form):
    """A collection's name, readers, embedding model and answer settings."""

    name = forms.CharField(label=_("Name"), max_length=200)
    slug = forms.SlugField(
        label=_("Slug"),
        max_length=100,
        required=False,
        help_text=_(
            "A short name for commands such as manage.py ingest; leave it "
            "empty to make it from the name."
        ),
    )
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    reader_groups = forms.ModelMultipleChoiceField(
        label=_("Who may ask questions in it"),
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "Members of the ticked groups read this collection; admins read "
            "every collection."
        ),
    )
    embedding_model = forms.ChoiceField(label=_("Embedding model"))
    answer_temperature = forms.FloatField(
        label=_("Answer temperature"),
        required=False,
        min_value=0,
        max_value=2,
        help_text=_("0 to 2; empty uses the chat model's default."),
    )
    answer_top_p = forms.FloatField(
        label=_("Answer top_p"),
        required=False,
        min_value=0,
        max_value=1,
        help_text=_("0 to 1; empty uses the chat model's default."),
    )
    answer_max_tokens = forms.IntegerField(
        label=_("Answer max tokens"),
        required=False,
        min_value=16,
        max_value=32768,
        help_text=_("16 to 32,768; empty uses the chat model's default."),
    )
    answer_seed = forms.IntegerField(
        label=_("Answer seed"),
        required=False,
        help_text=_(
            "A fixed seed makes answers more repeatable where the model allows."
        ),
    )

    def __init__(
        self, *args: object, collection: Collection | None = None, **kwargs: object
    ) -> None:
        self.collection = collection
        initial = {"embedding_model": settings.EMBEDDING_MODEL}
        if collection is not None:
            initial = {
                "name": collection.name,
                "slug": collection.slug,
                "description": collection.description,
                "reader_groups": list(collection.reader_groups.all()),
                "embedding_model": collection.embedding_model,
                "answer_temperature": collection.answer_temperature,
                "answer_top_p": collection.answer_top_p,
                "answer_max_tokens": collection.answer_max_tokens,
                "answer_seed": collection.answer_seed,
            }
        super().__init__(*args, initial=initial, **kwargs)
        model = self.fields["embedding_model"]
        model.choices = embedding_model_choices(
            collection.embedding_model if collection else ""
        )
        if collection is None:
            model.required = False  # empty: the configured default
            model.help_text = _(
                "Chosen now; changing it later re-indexes every document."
            )
        else:
            model.help_text = _(
                "Changing it re-indexes every document of the collection with "
                "the new model; until each is done, it is searched with its "
                "old passages."
            )

    @property
    def main_fields(self) -> list[forms.BoundField]:
        return [f for f in self if not f.name.startswith("answer_")]

    @property
    def answer_fields(self) -> list[forms.BoundField]:
        return [f for f in self if f.name.startswith("answer_")]


class UserCreateForm(forms.Form):
    """A new account: username, optional email and password, its groups."""

    username = forms.CharField(label=_("Username"), max_length=150)
    email = forms.EmailField(label=_("Email (optional)"), required=False)
    password = forms.CharField(
        label=_("Initial password (optional)"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_(
            "At least 12 characters and not a common one. Leave it empty to "
            "have one generated; it is shown once, after the account is made."
        ),
    )
    groups = forms.ModelMultipleChoiceField(
        label=_("Groups"),
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("New staff go into Staff, the default readers."),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["groups"].initial = list(
            Group.objects.filter(name=STAFF_GROUP).values_list("pk", flat=True)
        )

    def add_service_error(self, error: ValidationError) -> None:
        """Show a service's ValidationError on the fields it names."""
        if hasattr(error, "error_dict"):
            for field, errors in error.error_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        else:
            # Password validators raise a plain list.
            self.add_error("password", error)


class GroupCreateForm(forms.Form):
    name = forms.CharField(label=_("Group name"), max_length=150)
