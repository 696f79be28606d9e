"""Provider errors carry a message to show and survive being pickled by Celery."""

import pickle

from ragapp.providers.exceptions import (
    ProviderConfigurationError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderUnavailableError,
)


def test_every_error_has_a_default_message_and_a_code():
    for cls in (
        ProviderError,
        ProviderUnavailableError,
        ProviderRateLimitedError,
        ProviderConfigurationError,
    ):
        error = cls()
        assert error.message
        assert str(error) == error.message
        assert error.code


def test_rate_limited_is_retryable_and_keeps_its_hint_through_pickle():
    error = ProviderRateLimitedError("Busy.", retry_after=12.5)

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes

    assert isinstance(copy, ProviderUnavailableError)
    assert (copy.message, copy.retry_after) == ("Busy.", 12.5)


def test_configuration_errors_are_not_retryable():
    assert not issubclass(ProviderConfigurationError, ProviderUnavailableError)
