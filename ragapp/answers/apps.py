from django.apps import AppConfig


class AnswersConfig(AppConfig):
    name = "ragapp.answers"
    verbose_name = "Answers"
