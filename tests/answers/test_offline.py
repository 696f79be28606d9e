"""The whole loop offline: real moderation, real retrieval, the extractive answerer."""

import pytest

from ragapp.answers.events import CitationAdded, Delta, Finished, Started
from ragapp.answers.models import Message
from ragapp.answers.services import QuestionError, ask
from ragapp.answers.threads import threads_of
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def collect(events):
    events = list(events)
    text = "".join(e.text for e in events if isinstance(e, Delta))
    citations = [e for e in events if isinstance(e, CitationAdded)]
    return events, text, citations


def test_extractive_answer_streams_with_citations_and_is_recorded(staff, handbook):
    events, text, citations = collect(
        ask(user=staff, question="How much are meal expenses refunded per day?")
    )
    assert isinstance(events[0], Started)
    assert events[0].answerer == "extractive"
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.status == Message.Status.ANSWERED
    assert text.startswith("Extractive answer")
    assert "35 euros" in text
    assert "[1]" in text or "[2]" in text
    assert citations, "a cited passage comes with its citation event"
    assert all(c.document_title == "Travel policy" for c in citations)
    assert any("35 euros" in c.quote for c in citations)
    # More than one delta: the answer streams, a moderation window at a time.
    assert sum(isinstance(e, Delta) for e in events) > 1

    message = Message.objects.get(pk=finished.message_id)
    assert message.thread.user == staff
    assert message.answer == text
    assert message.answerer == Message.Answerer.EXTRACTIVE
    assert message.model.startswith("extractive/")
    assert message.question_check is not None
    assert not message.question_check.flagged
    assert message.answer_checks.count() >= 1
    assert message.latency_ms is not None and message.first_token_ms is not None
    assert message.cost_usd == 0
    assert message.retrieval_trace["passages"]
    assert sorted(c.marker for c in message.citations.all()) == sorted(
        c.marker for c in citations
    )
    assert {c.chunk_id for c in message.citations.all()} <= {
        p["chunk_id"] for p in message.retrieval_trace["passages"]
    }


def test_nothing_relevant_says_so_plainly(staff, handbook):
    events, text, citations = collect(
        ask(user=staff, question="What is the boiling point of liquid nitrogen?")
    )
    assert events[-1].status == Message.Status.NOT_FOUND
    assert "do not seem to answer" in text
    assert citations == []


def test_a_flagged_question_is_refused_before_retrieval(staff, handbook):
    events, text, _ = collect(
        ask(user=staff, question="I will kill you and your whole family tonight.")
    )
    finished = events[-1]
    assert finished.status == Message.Status.REFUSED
    assert "content check flagged" in finished.reason
    assert text == ""
    message = Message.objects.get(pk=finished.message_id)
    assert message.question_check.flagged
    assert message.search_query == ""
    assert message.retrieval_trace == {}


def test_collections_the_user_may_not_read_give_nothing(staff, handbook, garden):
    for scope in (None, [garden.pk], [garden.pk, handbook.pk]):
        _events, text, citations = collect(
            ask(
                user=staff,
                question="When should roses be pruned?",
                collection_ids=scope,
            )
        )
        assert "late winter" not in text
        assert all(c.document_title != "Roses" for c in citations)


def ask_after(user, first: str, then: str):
    """Ask `first`, then `then` in the same thread; collect the follow-up."""
    events, _, _ = collect(ask(user=user, question=first))
    thread = Message.objects.get(pk=events[-1].message_id).thread
    return collect(ask(user=user, question=then, thread=thread))


def test_follow_up_borrows_the_previous_query(staff, handbook):
    events, _, citations = ask_after(
        staff, "Which class do staff travel in on trains?", "And with approval?"
    )
    message = Message.objects.get(pk=events[-1].message_id)
    assert message.search_query.startswith("Which class do staff travel in on trains?")
    # The follow-up alone matches nothing; with the borrowed query it finds
    # the travel rules again.
    assert any("director's approval" in c.quote for c in citations)


def test_threads_belong_to_their_user(staff, handbook):
    events, _, _ = collect(
        ask(user=staff, question="How are laptops secured in hotels?")
    )
    thread = Message.objects.get(pk=events[-1].message_id).thread
    other = UserFactory(username="other")
    with pytest.raises(QuestionError):
        ask(user=other, question="And then?", thread=thread)
    assert list(threads_of(other)) == []
    assert list(threads_of(staff)) == [thread]


@pytest.mark.parametrize("question", ["", "   ", "\x00\x00", "x" * 4001])
def test_unusable_questions_are_refused_before_anything_is_recorded(staff, question):
    with pytest.raises(QuestionError):
        ask(user=staff, question=question)
    assert Message.objects.count() == 0


def test_reader_leaving_mid_answer_is_recorded(staff, handbook):
    stream = ask(user=staff, question="How much are meal expenses refunded per day?")
    started = next(stream)
    next(stream)
    stream.close()
    message = Message.objects.get(pk=started.message_id)
    assert message.status == Message.Status.INTERRUPTED
    assert message.finished_at is not None


def test_closing_after_the_last_event_keeps_the_recorded_status(staff, handbook):
    stream = ask(user=staff, question="How much are meal expenses refunded per day?")
    events = []
    for event in stream:
        events.append(event)
        if isinstance(event, Finished):
            stream.close()  # the reader leaves right at the end
            break
    message = Message.objects.get(pk=events[-1].message_id)
    assert message.status == Message.Status.ANSWERED
    assert message.citations.count() >= 1


def test_a_documents_own_bracketed_numbers_are_not_citations():
    from ragapp.answers.extractive import ExtractiveAnswer
    from ragapp.retrieval.rerank import ScoredSentence

    answer = ExtractiveAnswer(
        sentences=[ScoredSentence(owner=1, sentence="As shown in [2, 3].", score=0.9)],
        best_score=0.9,
    )
    assert answer.text().endswith("“As shown in (2, 3).” [1]")


@pytest.mark.parametrize(
    ("question", "holds", "lacks"),
    [
        ("Within how many hours must it be reported?", "within 24 hours", "24 staff"),
        ("How many days may a claim wait?", "within 30 days", "on day one"),
        ("By what date must agencies migrate?", "by March 2021", "soon"),
        ("What percentage is refunded?", "80 % of it", "most of it"),
        ("How much is the meal allowance?", "35 euros", "a fair amount"),
    ],
)
def test_a_question_for_a_quantity_needs_a_sentence_holding_one(question, holds, lacks):
    from ragapp.answers.extractive import _answer_shape

    shape = _answer_shape(question)
    assert shape.search(holds)
    assert not shape.search(lacks)


def test_other_questions_take_any_sentence():
    from ragapp.answers.extractive import _answer_shape

    assert _answer_shape("Who approves first class?") is None


def test_a_question_for_a_missing_number_is_declined(staff, handbook):
    """The handbook speaks of claims and hours, but never of a mileage rate."""
    events, _text, citations = collect(
        ask(user=staff, question="How many cents per kilometre is the mileage rate?")
    )
    assert events[-1].status == Message.Status.NOT_FOUND
    assert not citations


def test_the_quote_names_what_was_asked(staff, handbook):
    """Of the handbook's time limits, the one about lost laptops is quoted."""
    _events, text, _citations = collect(
        ask(user=staff, question="When is a lost laptop reported to the service desk?")
    )
    assert "within one hour" in text
    assert "30 days" not in text


def test_a_follow_up_for_a_number_quotes_the_sentence_holding_it(staff, handbook):
    _events, text, _citations = ask_after(
        staff,
        "How much are meal expenses refunded per day?",
        "And within how many days?",
    )
    assert "within 30 days" in text
