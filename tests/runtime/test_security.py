"""Deployment checks and security headers (T07), ready for later routes to join."""

import secrets

import pytest
from django.urls import reverse

from tests.processes import manage

PRODUCTION_ENV = {
    "RAGAPP_HTTPS": "true",
    "RAGAPP_DEBUG": "false",
    "RAGAPP_ALLOWED_HOSTS": "ragapp.example.com",
    "RAGAPP_CSRF_TRUSTED_ORIGINS": "https://ragapp.example.com",
}


def test_check_deploy_is_clean_in_the_production_configuration(tmp_path):
    env = {
        **PRODUCTION_ENV,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "RAGAPP_DATA_DIR": str(tmp_path),
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_cookies_are_secure_host_prefixed_and_http_only(tmp_path):
    env = {**PRODUCTION_ENV, "RAGAPP_DATA_DIR": str(tmp_path)}
    script = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_NAME, "
        "s.CSRF_COOKIE_NAME, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE, s.SECURE_HSTS_SECONDS)"
    )
    result = manage("shell", "--no-imports", "-c", script, env=env)
    assert result.stdout.split() == [
        "__Host-sessionid",
        "__Host-csrftoken",
        "True",
        "True",
        "True",
        "Lax",
        "31536000",
    ]


def test_generated_secret_key_is_kept_private_in_the_data_dir(tmp_path):
    script = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = manage(
        "shell",
        "--no-imports",
        "-c",
        script,
        env={"RAGAPP_DATA_DIR": str(tmp_path)},
        drop=("SECRET_KEY",),
    )
    key_file = tmp_path / "secret_key"
    assert first.stdout.strip() == key_file.read_text().strip()
    assert len(first.stdout.strip()) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy_and_headers(client):
    response = client.get(reverse("accounts:login"))
    csp = response.headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split("; ") if part}
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert any(source.startswith("'nonce-") for source in directives["script-src"])
    assert "'unsafe-inline'" not in directives["script-src"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
