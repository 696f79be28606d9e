"""Forms of the admins' pages."""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _

from ragapp.documents.models import Collection
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS


class CollectionForm(forms.Form):
    """A collection's name, readers and (when editing) model and answer settings."""

    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    reader_groups = forms.ModelMultipleChoiceField(
        label=_("Who may ask questions in it"),
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Members of the ticked groups read this collection."),
    )

    def __init__(
        self, *args: object, collection: Collection | None = None, **kwargs: object
    ) -> None:
        initial = {}
        if collection is not None:
            initial = {
                "name": collection.name,
                "description": collection.description,
                "reader_groups": list(collection.reader_groups.all()),
                "embedding_model": collection.embedding_model,
                "answer_temperature": collection.answer_temperature,
                "answer_top_p": collection.answer_top_p,
                "answer_max_tokens": collection.answer_max_tokens,
                "answer_seed": collection.answer_seed,
            }
        super().__init__(*args, initial=initial, **kwargs)
        if collection is None:
            return
        self.fields["embedding_model"] = forms.ChoiceField(
            label=_("Embedding model"),
            choices=[(m, m) for m in EMBEDDING_DIMENSIONS],
            help_text=_("Changing it re-indexes every document of the collection."),
        )
        self.fields["answer_temperature"] = forms.FloatField(
            label=_("Answer temperature"), required=False, min_value=0, max_value=2
        )
        self.fields["answer_top_p"] = forms.FloatField(
            label=_("Answer top_p"), required=False, min_value=0, max_value=1
        )
        self.fields["answer_max_tokens"] = forms.IntegerField(
            label=_("Answer max tokens"), required=False, min_value=16, max_value=32768
        )
        self.fields["answer_seed"] = forms.IntegerField(
            label=_("Answer seed"), required=False
        )
