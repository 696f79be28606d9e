"""The offline moderation screen: OpenAI's categories from three cheap signals.

No moderation model ships in a PyPI wheel, so the verdict is assembled here:

1. Nearest exemplars. Each sentence of the text is embedded with the local
   MiniLM model and compared with a few curated sentences per category
   (`moderation_exemplars.json`). Similarity alone is topical: "suicide
   prevention programmes" sits close to "I want to kill myself". So the same
   sentence is also compared with benign sentences *about* those topics
   (prevention, history, medicine, law), and a harmful match counts for less
   when a benign one is nearer.
2. alt-profanity-check (a TF-IDF + linear SVM classifier of offensive language,
   MIT) lifts harassment when the offence is aimed at the reader ("you") and
   hate a little. Swearing alone is not harassment: "what the hell does clause
   5 mean" must pass.
3. Rules for wording that is harmful whatever surrounds it ("kill yourself",
   first-person suicide intent, requests for sexual images of children,
   bomb-making requests, a few slurs).

Scores are calibrated so that 0.5 is this screen's own line in every category
(tests/moderation holds benign texts about the topics under it and harmful
texts over it). Sentence vectors are cached, so re-screening a growing
streamed answer embeds only its new sentences; the exemplar vectors are
computed once per process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ragapp.providers.base import MODERATION_CATEGORIES, ModerationResult
from ragapp.providers.exceptions import ProviderConfigurationError

logger = logging.getLogger(__name__)

EXEMPLARS_PATH = Path(__file__).resolve().parent / "moderation_exemplars.json"
# The thresholds below were calibrated with this model's vectors; another
# embedder would need its own calibration, so this one is fixed.
EXEMPLAR_MODEL = "local/all-MiniLM-L6-v2"
# sha256 of the two pickles in alt-profanity-check 1.9.1: joblib.load runs
# pickle, so only the files that wheel shipped are ever loaded.
PROFANITY_FILES = {
    "vectorizer.joblib": (
        "19c5200dc6a41f026e0558e2f164f5fe8d8f58e502b46b37e4385037fcfa4831"
    ),
    "model.joblib": (
        "aeafc04849d4d93db4721cf30a86ebf22085595294b8a07d51918e7fa98f538b"
    ),
}

# How a benign neighbour discounts a harmful one: by as much as it is nearer.
# Scores are a logistic of (similarity - cutoff) / SCALE.
BENIGN_PENALTY = 1.0
SCALE = 0.04
# Profanity aimed at "you" adds this much similarity to harassment; any
# profanity adds HATE_BOOST to hate (slurs score high as offensive language).
DIRECTED_BOOST = 0.15
HATE_BOOST = 0.08
RULE_SCORE = 0.98
# MiniLM reads 256 word-pieces; longer sentences are scored in windows.
MAX_SEGMENT_WORDS = 80
# A short text is also scored whole, so intent split over two sentences
# ("I have the pills. Tonight I take them all.") is seen together.
WHOLE_TEXT_CHARS = 500
VECTOR_CACHE_SIZE = 4096

# A parent category scores at least as high as its sub-categories, as in
# OpenAI's results; threats count as violence too.
IMPLIED: dict[str, tuple[str, ...]] = {
    "harassment/threatening": ("harassment", "violence"),
    "hate/threatening": ("hate", "violence"),
    "illicit/violent": ("illicit",),
    "self-harm/intent": ("self-harm",),
    "self-harm/instructions": ("self-harm",),
    "sexual/minors": ("sexual",),
    "violence/graphic": ("violence",),
}

_SECOND_PERSON = r"\b(?:you|your|yours|youre|you're|yourself|ya|u|ur)\b"
_FIRST_PERSON = r"\b(?:i|i'm|im|i've|i'll|i'd|me|my|myself|mine|we|us|our)\b"
_REQUEST = (
    r"\b(?:how (?:do|can|could|would|should|might) (?:i|we|you|one)|how to"
    r"|where (?:can|do|could|would) (?:i|we)|give me|tell me|show me|teach me"
    r"|help me|write|explain how|best way|easiest way|let's|lets)\b"
)
_DEATH = r"\b(?:die|dying|kill|suicide|end it|end my life)\b"
# A harmful exemplar is topical evidence; these cues are the speaker's stake in
# it. Without one ("the lethal dose of caffeine", "explosives in mining", "the
# soldiers fired on the crowd") a category's similarity counts GATE_PENALTY less.
GATES: dict[str, re.Pattern[str]] = {
    category: re.compile("|".join(cues))
    for category, cues in {
        "harassment/threatening": (_SECOND_PERSON, _FIRST_PERSON),
        "illicit": (_FIRST_PERSON, _SECOND_PERSON, _REQUEST),
        "illicit/violent": (_FIRST_PERSON, _SECOND_PERSON, _REQUEST),
        "self-harm": (_FIRST_PERSON,),
        "self-harm/intent": (_FIRST_PERSON,),
        "self-harm/instructions": (_FIRST_PERSON, _REQUEST, _DEATH),
        "violence": (_FIRST_PERSON, _SECOND_PERSON, _REQUEST),
    }.items()
}
GATE_PENALTY = 0.1
_YOU = re.compile(_SECOND_PERSON)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+|\n+")
_HAS_LETTER = re.compile(r"[^\W\d_]")

_MINOR = (
    r"(?:child(?:ren)?|kids?|minors?|underage|preteens?|toddlers?|little (?:girl|boy)s?"
    r"|(?:[1-9]|1[0-7])[- ]?(?:yo|y/o|years?[- ]old)\b)"
)
_SEXUAL_IMAGE = r"(?:nudes?|naked|sexy|porn\w*|lewd|erotic\w*|have sex with)"
# Someone asking for it, not a policy forbidding it ("staff must never share
# nude images of children" is a sentence safeguarding documents contain).
_ASKS_FOR = (
    r"(?:\b(?:send|show|give|get) me\b|\bwhere (?:can|do|could) i\b"
    r"|\bhow (?:do|can) i (?:find|get|download)\b|\bi (?:want|need|wanna)\b)"
)
_FIRST_PERSON_WILL = (
    r"\bi(?:'m| am|m)?\s+(?:going to|gonna|want to|wanna|will|plan(?:ning)? to"
    r"|about to|ready to|decided to|have decided to)\s+"
)

# Wording that is harmful whatever its context: (category, pattern).
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (category, re.compile(pattern))
    for category, pattern in (
        ("harassment", r"\b(?:go\s+)?(?:kill|hang)\s+(?:yo)?ur\s?self\b|\bkys\b"),
        ("harassment", r"\bfuck\s+(?:you|u|off)\b|\bstfu\b"),
        (
            "harassment/threatening",
            r"\bi(?:'ll| will|'m going to| am going to| gonna)\s+"
            r"(?:kill|murder|stab|shoot|strangle|rape|hurt|end)\s+(?:you|u)\b",
        ),
        (
            "self-harm/intent",
            _FIRST_PERSON_WILL + r"(?:kill|hang|hurt|cut|shoot|drown)\s+myself\b",
        ),
        (
            "self-harm/intent",
            _FIRST_PERSON_WILL + r"(?:end|take)\s+my\s+(?:own\s+)?life\b",
        ),
        ("self-harm/intent", _FIRST_PERSON_WILL + r"commit\s+suicide\b"),
        (
            "self-harm/instructions",
            r"\b(?:how (?:do|can|should|could) i|how to|(?:best|easiest|quickest"
            r"|painless|fastest|surest) way to)\s+(?:kill myself|end my (?:own )?life"
            r"|hang myself|commit suicide|overdose)\b",
        ),
        (
            "sexual/minors",
            _ASKS_FOR
            + r"[^.?!]{0,40}(?:"
            + _SEXUAL_IMAGE
            + r"[^.?!]{0,40}\b"
            + _MINOR
            + r"|\b"
            + _MINOR
            + r"[^.?!]{0,20}"
            + _SEXUAL_IMAGE
            + r")",
        ),
        (
            "illicit/violent",
            r"\bhow\s+(?:do\s+i|to|can\s+i|would\s+i|should\s+i)\s+"
            r"(?:make|build|assemble|construct|cook)\s+(?:a\s+|an\s+)?"
            r"(?:pipe\s*bomb|bomb(?!\s*(?:shelter|calorimet|proof))|ied\b"
            r"|molotov|nerve agent|sarin|ricin|napalm)",
        ),
        ("hate", r"\bn[i1!]gg(?:er|a|ah)s?\b|\bfagg?ots?\b|\bk[iy]kes?\b"),
        ("hate", r"\bsp[i1]cs?\b|\bwetbacks?\b|\bsand\s?n[i1]gg"),
    )
)


@dataclass(frozen=True)
class _Exemplars:
    matrix: np.ndarray  # (n, d) unit rows: every category's sentences
    owners: np.ndarray  # (n,) index into MODERATION_CATEGORIES per row
    benign: np.ndarray  # (m, d) unit rows
    cutoffs: np.ndarray  # (categories,)
    version: int


@dataclass(frozen=True)
class _Profanity:
    vectorizer: Any
    model: Any

    def scores(self, texts: list[str]) -> np.ndarray:
        """Return the probability that each text is offensive language."""
        if not texts:
            return np.zeros(0)
        return self.model.predict_proba(self.vectorizer.transform(texts))[:, 1]


class LocalModerationProvider:
    """Screen text on this machine, with no network, in OpenAI's result shape."""

    name = "local"

    def __init__(self) -> None:
        self.version = _read_exemplar_file()["version"]
        self.model = f"local/profanity-check+minilm-exemplars-v{self.version}"
        self._exemplars: _Exemplars | None = None
        self._profanity: _Profanity | None = None
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def moderate(self, text: str) -> ModerationResult:
        """Return the verdict on `text`; every category gets a score."""
        scores = np.zeros(len(MODERATION_CATEGORIES))
        normalised = normalise(text)
        segments = split_segments(normalised)
        if segments:
            scores = np.maximum(scores, self._segment_scores(segments))
        for category, pattern in RULES:
            if pattern.search(normalised):
                position = MODERATION_CATEGORIES.index(category)
                scores[position] = max(scores[position], RULE_SCORE)
        category_scores = _with_implied(
            {
                name: round(float(score), 6)
                for name, score in zip(MODERATION_CATEGORIES, scores, strict=True)
            }
        )
        categories = {name: s >= 0.5 for name, s in category_scores.items()}
        return ModerationResult(
            flagged=any(categories.values()),
            categories=categories,
            category_scores=category_scores,
            model=self.model,
        )

    def warm_up(self) -> None:
        """Load the classifier and the exemplar vectors now, not on first use."""
        self._get_exemplars()
        self._get_profanity()

    # --- signals ------------------------------------------------------------

    def _segment_scores(self, segments: list[str]) -> np.ndarray:
        """Return each category's highest score over the segments."""
        exemplars = self._get_exemplars()
        vectors = self._vectors(segments)
        similarity = vectors @ exemplars.matrix.T  # (segments, exemplars)
        nearest = np.full((len(segments), len(MODERATION_CATEGORIES)), -1.0)
        for position in range(len(MODERATION_CATEGORIES)):
            columns = exemplars.owners == position
            if columns.any():
                nearest[:, position] = similarity[:, columns].max(axis=1)
        benign = (vectors @ exemplars.benign.T).max(axis=1, keepdims=True)
        adjusted = nearest - BENIGN_PENALTY * np.maximum(0.0, benign - nearest)
        for category, cue in GATES.items():
            position = MODERATION_CATEGORIES.index(category)
            ungated = np.array([not cue.search(s) for s in segments])
            adjusted[:, position] -= GATE_PENALTY * ungated

        offensive = self._get_profanity().scores(segments)
        directed = np.array([bool(_YOU.search(s)) for s in segments])
        harassment = MODERATION_CATEGORIES.index("harassment")
        hate = MODERATION_CATEGORIES.index("hate")
        adjusted[:, harassment] += DIRECTED_BOOST * offensive * directed
        adjusted[:, hate] += HATE_BOOST * offensive

        scores = 1.0 / (1.0 + np.exp(-(adjusted - exemplars.cutoffs) / SCALE))
        return scores.max(axis=0)

    def _vectors(self, segments: list[str]) -> np.ndarray:
        """Return unit vectors of `segments`, embedding only those not cached."""
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for segment in segments:
                vector = self._cache.get(segment)
                if vector is not None:
                    self._cache.move_to_end(segment)
                    found[segment] = vector
        missing = [s for s in dict.fromkeys(segments) if s not in found]
        if missing:
            fresh = _embedder().embed(missing)
            with self._cache_lock:
                for segment, vector in zip(missing, fresh, strict=True):
                    found[segment] = np.asarray(vector, dtype=np.float32)
                    self._cache[segment] = found[segment]
                while len(self._cache) > VECTOR_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return np.vstack([found[segment] for segment in segments])

    # --- loading ------------------------------------------------------------

    def _get_exemplars(self) -> _Exemplars:
        if self._exemplars is None:
            with self._load_lock:
                if self._exemplars is None:
                    self._exemplars = _load_exemplars()
        return self._exemplars

    def _get_profanity(self) -> _Profanity:
        if self._profanity is None:
            with self._load_lock:
                if self._profanity is None:
                    self._profanity = _load_profanity()
        return self._profanity


# --- text ----------------------------------------------------------------------


def normalise(text: str) -> str:
    """Return `text` folded for matching: NFKC, lower case, one space per gap.

    NFKC maps full-width and stylised letters (U+FF4B for "k") to plain ones.
    Zero-width characters are dropped, so "ki\u200bll" cannot dodge a rule,
    and so are lone surrogates, which the tokenizer cannot take.
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) not in {"Cf", "Cs"})
    text = text.replace("\u2019", "'")
    return re.sub(r"[^\S\n]+", " ", text).lower().strip()


def split_segments(text: str) -> list[str]:
    """Return the sentences of `text`, long ones in windows, plus a short whole."""
    segments: list[str] = []
    for sentence in _SENTENCE_BREAK.split(text):
        words = sentence.split()
        for start in range(0, len(words), MAX_SEGMENT_WORDS):
            segment = " ".join(words[start : start + MAX_SEGMENT_WORDS])
            if _HAS_LETTER.search(segment):
                segments.append(segment)
    if len(segments) > 1 and len(text) <= WHOLE_TEXT_CHARS:
        segments.append(" ".join(text.split()))
    return segments


def _with_implied(scores: dict[str, float]) -> dict[str, float]:
    for child, parents in IMPLIED.items():
        for parent in parents:
            scores[parent] = max(scores[parent], scores[child])
    return scores


# --- loading -------------------------------------------------------------------


def _read_exemplar_file() -> dict[str, Any]:
    data = json.loads(EXEMPLARS_PATH.read_text(encoding="utf-8"))
    unknown = set(data["categories"]) - set(MODERATION_CATEGORIES)
    if unknown:
        raise ProviderConfigurationError(
            f"{EXEMPLARS_PATH.name} names unknown categories: {sorted(unknown)}"
        )
    return data


def _embedder() -> Any:
    from ragapp.providers.embeddings import get_embedding_provider

    return get_embedding_provider(EXEMPLAR_MODEL)


def _load_exemplars() -> _Exemplars:
    """Embed the exemplar sentences: about 2 s for the ~110 of them, once."""
    data = _read_exemplar_file()
    sentences: list[str] = []
    owners: list[int] = []
    for category, examples in data["categories"].items():
        sentences.extend(normalise(example) for example in examples)
        owners.extend([MODERATION_CATEGORIES.index(category)] * len(examples))
    embedder = _embedder()
    matrix = np.asarray(embedder.embed(sentences), dtype=np.float32)
    benign = np.asarray(
        embedder.embed([normalise(s) for s in data["benign"]]), dtype=np.float32
    )
    default = data["cutoffs"].get("default", 0.5)
    cutoffs = np.array(
        [data["cutoffs"].get(name, default) for name in MODERATION_CATEGORIES]
    )
    logger.info(
        "Moderation exemplars v%s embedded: %d harmful, %d benign",
        data["version"],
        len(sentences),
        len(benign),
    )
    return _Exemplars(
        matrix=matrix,
        owners=np.asarray(owners),
        benign=benign,
        cutoffs=cutoffs,
        version=data["version"],
    )


def _load_profanity() -> _Profanity:
    """Load alt-profanity-check's vectorizer and model after checking the files."""
    try:
        import joblib

        folder = resources.files("profanity_check") / "data"
    except ImportError as exc:
        raise ProviderConfigurationError(
            f"The offline moderation screen needs the {exc.name!r} package; "
            "install ragapp's dependencies again."
        ) from exc
    loaded = {}
    for name, expected in PROFANITY_FILES.items():
        path = Path(str(folder / name))
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != expected:
            raise ProviderConfigurationError(
                f"The profanity classifier file {path} is not the one "
                "alt-profanity-check 1.9.1 ships (checksum mismatch); reinstall it."
            )
        loaded[name] = joblib.load(path)
    return _Profanity(
        vectorizer=loaded["vectorizer.joblib"], model=loaded["model.joblib"]
    )
