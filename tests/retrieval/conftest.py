import pytest


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Uploads of retrieval tests land in the test's own directory."""
    settings.MEDIA_ROOT = tmp_path / "media"
