"""Pages for staff and admins."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ragapp.documents.selectors import collection_list_readable


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """List the collections the signed-in user may ask questions in."""
    collections = collection_list_readable(user=request.user)
    return render(request, "web/home.html", {"collections": collections})
