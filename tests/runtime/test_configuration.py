"""Settings, .env.example, README and docker-compose.yml name the same variables."""

import ast
import re

import yaml

from tests.conftest import REPO_ROOT

ENV_READERS = {"str", "bool", "int", "float", "list", "path", "db", "url", "json"}


def settings_variables() -> set[str]:
    """Return every environment variable ragapp/settings.py reads through `env`."""
    tree = ast.parse((REPO_ROOT / "ragapp" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        reads_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
            and func.attr in ENV_READERS
        )
        first = node.args[0]
        if (
            reads_env
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
        ):
            names.add(first.value)
    return names


def compose_app_services() -> dict[str, dict]:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "ragapp:latest"
    }


def test_settings_read_the_documented_core_variables():
    names = settings_variables()
    for required in (
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "RAGAPP_DATA_DIR",
        "SECRET_KEY",
        "RAGAPP_CHAT_MODEL",
        "RAGAPP_EMBEDDING_MODEL",
        "RAGAPP_MAX_UPLOAD_MB",
    ):
        assert required in names


def test_every_app_service_in_compose_uses_only_real_settings():
    services = compose_app_services()
    assert set(services) == {"migrate", "web", "worker", "embedder", "beat"}
    known = settings_variables()
    for name, service in services.items():
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets variables settings never read: {unknown}"


def test_compose_runs_pgvector_redis_web_under_uvicorn_and_a_worker():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["web"]["command"][:2] == ["uvicorn", "ragapp.asgi:application"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "ragapp", "worker"]
    assert "fsync=on" in services["db"]["command"]
    assert "synchronous_commit=on" in services["db"]["command"]
    assert "noeviction" in services["redis"]["command"]


def test_env_example_lists_every_setting_and_nothing_else():
    text = (REPO_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert listed - {"POSTGRES_PASSWORD"} == settings_variables()


def test_readme_documents_every_setting():
    readme = (REPO_ROOT / "README.md").read_text()
    missing = {name for name in settings_variables() if f"`{name}`" not in readme}
    assert not missing, f"README.md does not document: {sorted(missing)}"
