from django.urls import path

from ragapp.web import views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("ask/", views.ask_page, name="ask"),
    path("ask/<int:thread_id>/", views.ask_page, name="thread"),
    path("ask/stream", views.ask_stream, name="ask-stream"),
]
