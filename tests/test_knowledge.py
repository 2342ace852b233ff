"""The knowledge base: its files, retrieval by meaning with the packaged sentence encoder, and its answers
in a dialog (real NLU, real SQLite file)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialogs.db.engine import ensure_database
from dialogs.domain import DomainError, load_domain
from dialogs.engine import DialogEngine, EngineOptions, Turn
from dialogs.knowledge import KnowledgeError, Retriever, load_knowledge
from dialogs.knowledge.dialog import FAQ, Knowledge
from dialogs.knowledge.evaluation import evaluate, load_questions
from dialogs.nlu import NLU

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 20, 10, 30)


def entry(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


GOOD = "---\nquestions:\n  - when are you open\nanswer: We are open from nine to five.\n---\nLonger text.\n"


@pytest.fixture(scope="module")
def domain():
    return load_domain()


@pytest.fixture(scope="module")
def knowledge(domain) -> Knowledge:
    k = Knowledge.for_domain(domain)
    assert k is not None
    return k


def test_the_demo_knowledge_base_has_about_thirty_short_spoken_answers(domain) -> None:
    kb = load_knowledge(domain.knowledge)
    assert len(kb.entries) >= 30
    assert len(set(kb.ids())) == len(kb.entries)
    for e in kb.entries:
        assert len(e.questions) >= 3, e.id
        assert len(e.answer) <= 300, e.id
    assert "30 days" in kb.get("return_policy").answer  # the same window the return action enforces


def test_an_entry_id_defaults_to_the_file_name_and_the_body_is_the_longer_text(tmp_path: Path) -> None:
    entry(tmp_path / "kb", "opening-hours.md", GOOD)
    kb = load_knowledge(tmp_path / "kb")
    e = kb.get("opening_hours")
    assert e.questions == ("when are you open",) and e.text == "Longer text."


@pytest.mark.parametrize(("text", "problem"), [
    ("questions: [a]\nanswer: b\n", "no front matter"),
    ("---\nquestions: [when are you open]\n---\n", "answer: is missing"),
    ("---\nquestion: [when]\nanswer: Nine to five.\n---\n", "unknown key 'question' (did you mean 'questions'?)"),
    ("---\nquestions: [when]\nanswer: [x\n---\n", "not valid YAML"),
    ("---\nquestions: [when]\nanswer: Nine.\nquestions: [how late]\n---\n",
     "front matter is not valid YAML at line 4, column 1: key 'questions' appears twice in the same mapping "
     "(first at line 2, column 1)"),
    ("---\nquestions: []\nanswer: Nine to five.\n---\n", "needs at least one question"),
    ("---\nid: Opening Hours\nquestions: [when]\nanswer: Nine.\n---\n", "id must be lower-case"),
])
def test_a_bad_entry_is_reported_with_file_entry_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = entry(tmp_path / "kb", "hours.md", text)
    with pytest.raises(KnowledgeError) as err:
        load_knowledge(tmp_path / "kb")
    f, e, message = err.value.problems[0]
    assert f == str(path) and e in ("hours", "Opening Hours") and problem in message


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    entry(tmp_path / "kb", "a.md", GOOD.replace("---\nq", "---\nid: hours\nq"))
    entry(tmp_path / "kb", "b.md", GOOD.replace("---\nq", "---\nid: hours\nq"))
    with pytest.raises(KnowledgeError, match="duplicate id"):
        load_knowledge(tmp_path / "kb")


def test_a_domain_names_its_knowledge_folder_relative_to_itself_and_reports_its_faults(tmp_path: Path) -> None:
    bundled = Path(str(load_domain().knowledge)).parent
    for name in ("domain.yaml", "nlu.yaml"):
        (tmp_path / name).write_text((bundled / name).read_text().replace("knowledge: knowledge", "knowledge: faq"))
    entry(tmp_path / "faq", "hours.md", GOOD)
    assert load_domain(tmp_path).knowledge == str((tmp_path / "faq").resolve())
    entry(tmp_path / "faq", "broken.md", "---\nquestions: [x]\n---\n")
    with pytest.raises(DomainError) as err:
        load_domain(tmp_path)
    assert err.value.problems == [(str((tmp_path / "faq" / "broken.md").resolve()), "knowledge: broken",
                                   "answer: is missing (one or two short sentences to say)")]


def test_questions_find_their_entry_by_meaning(knowledge: Knowledge) -> None:
    r = knowledge.retriever
    for question, wanted in [("when do you open on saturday", "opening_hours"),
                             ("how much do you charge for delivery", "shipping_cost"),
                             ("how long can i wait before returning an item", "return_policy")]:
        verdict = r.lookup(question)
        assert verdict.match is not None and verdict.match.entry.id == wanted, (question, verdict)
        assert verdict.probability >= r.threshold and verdict.match.score > 0.5


def test_unknown_questions_get_i_dont_know_with_the_reason(knowledge: Knowledge) -> None:
    verdict = knowledge.retriever.lookup("who won the world cup in 1998")
    assert verdict.match is None and verdict.best is not None
    assert verdict.trace()["entry"] is None and "out-of-scope" in verdict.reason


@pytest.mark.parametrize(("question", "wanted"), [
    ("good morning, the mirror i ordered came in two pieces and there's glass everywhere in the box", "damaged_item"),
    ("the blender i bought from you in spring stopped turning on, do you fix it or replace it", "warranty"),
])
def test_a_long_question_that_tells_a_story_first_finds_its_entry(
        knowledge: Knowledge, question: str, wanted: str) -> None:
    # every variant is far in cosine (below 0.45, where a fixed threshold said "I don't know"); the classifier
    # still sees which entry it leans to
    verdict = knowledge.retriever.lookup(question)
    assert verdict.match is not None and verdict.match.entry.id == wanted, verdict
    assert verdict.match.score < 0.45 and verdict.probability >= knowledge.retriever.threshold


def test_a_knowledge_base_of_one_entry_without_negatives_answers_by_cosine(tmp_path: Path) -> None:
    entry(tmp_path / "kb", "hours.md", GOOD)
    r = Retriever(load_knowledge(tmp_path / "kb"), threshold=0.5)
    assert r.lookup("when are you open on mondays").match is not None
    verdict = r.lookup("the cat sat on the mat")
    assert verdict.match is None and "below the threshold" in verdict.reason


def test_a_question_near_a_topic_but_not_answered_gets_i_dont_know_and_its_neighbour_still_its_answer(
        knowledge: Knowledge) -> None:
    # "gift wrapping" is nearest to the gift cards entry, but nearer still to a question of not-answered.yaml
    r = knowledge.retriever
    assert r.kb.not_answered and "can you wrap it as a present" in r.kb.not_answered
    verdict = r.lookup("do you offer gift wrapping")
    assert verdict.match is None and verdict.best is not None and verdict.best.entry.id == "gift_cards"
    assert "which the knowledge base does not answer" in verdict.reason and verdict.trace()["entry"] is None
    assert knowledge.score("do you offer gift wrapping") == verdict.best.score  # the NLU's faq check is as before
    verdict = r.lookup("can i buy a gift card for my mother")
    assert verdict.match is not None and verdict.match.entry.id == "gift_cards"


def test_not_answered_questions_veto_only_what_they_are_nearer_to(tmp_path: Path) -> None:
    entry(tmp_path / "kb", "hours.md", GOOD)
    r = Retriever(load_knowledge(tmp_path / "kb"), threshold=0.2)
    assert r.lookup("when are you open on mondays").match is not None
    assert r.lookup("are you taking on new people").match is not None  # nothing says it is not answered
    (tmp_path / "kb" / "not-answered.yaml").write_text("questions:\n  - do you have any job vacancies\n")
    r = Retriever(load_knowledge(tmp_path / "kb"), threshold=0.2)
    assert r.lookup("when are you open on mondays").match is not None
    assert r.lookup("are you taking on new people").match is None


@pytest.mark.parametrize(("text", "problem"), [
    ("- a list\n", "must be a mapping with one key, questions:"),
    ("question: [a]\n", "must be a mapping with one key, questions:"),
    ("questions: []\n", "needs at least one question"),
    ("questions: [a, '']\n", "questions.1 is empty"),
    ("questions: [a\n", "not valid YAML"),
    ("questions:\n  - a\nquestions:\n  - b\n",
     "not valid YAML at line 3, column 1: key 'questions' appears twice in the same mapping (first at line 1, column 1)"),
])
def test_a_bad_not_answered_file_is_reported(tmp_path: Path, text: str, problem: str) -> None:
    entry(tmp_path / "kb", "hours.md", GOOD)
    (tmp_path / "kb" / "not-answered.yaml").write_text(text)
    with pytest.raises(KnowledgeError) as err:
        load_knowledge(tmp_path / "kb")
    [(f, e, message)] = err.value.problems
    assert f.endswith("not-answered.yaml") and e == "(not answered)" and problem in message, message


def test_held_out_accuracy_of_both_encoders(domain, knowledge: Knowledge) -> None:
    # The measured figures are in the report; these floors keep a regression from passing unnoticed.
    kb = knowledge.retriever.kb
    questions = load_questions(DATA / "knowledge_heldout.tsv", set(kb.ids()))
    sentence = evaluate(knowledge.retriever, questions)
    tfidf = evaluate(Retriever.with_tfidf(kb, negatives=domain.intents["out_of_scope"].examples), questions)
    assert sentence.accuracy >= 0.8
    assert sentence.accuracy > tfidf.accuracy


def test_eval_knowledge_cli_prints_json(tmp_path: Path) -> None:
    from voicebot.cli.evaluate import eval_group

    tsv = tmp_path / "q.tsv"
    tsv.write_text("question\tentry\nwhen are you open on saturdays\topening_hours\ntell me about the moon\t-\n")
    result = CliRunner().invoke(eval_group, ["knowledge", str(tsv), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 2 and report["accuracy"] == 1.0 and report["encoder"] == "sentence"
    bad = tmp_path / "bad.tsv"
    bad.write_text("question\tentry\nwhen are you open\topening_hourz\n")
    result = CliRunner().invoke(eval_group, ["knowledge", str(bad)])
    assert result.exit_code == 2 and "line 2: 'opening_hourz' is not an entry" in result.output


def test_eval_knowledge_through_the_nlu_tells_answers_from_requests_and_i_dont_know(tmp_path: Path) -> None:
    # as a call hears it: a request goes to its flow (right for a question the knowledge base does not answer)
    from voicebot.cli.evaluate import eval_group

    tsv = tmp_path / "q.tsv"
    tsv.write_text("question\tentry\nwhen are you open on saturdays\topening_hours\n"
                   "cancel order 33451 please\t-\nhow do i cook rice\t-\n"
                   "can i exchange the jacket for a medium\texchanges\n")
    result = CliRunner().invoke(eval_group, ["knowledge", str(tsv), "--json", "--through-nlu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["through"] == "nlu" and report["accuracy"] == 1.0
    # "... Would you like me to start a return now?": the return is offered, not started; the row is the answer's
    assert report["heard"] == {"known": {"answer": 2, "request": 0, "nothing": 0},
                               "unknown": {"answer": 0, "request": 1, "nothing": 1}}
    assert report["offered"] == {"known": 1, "unknown": 0}
    result = CliRunner().invoke(eval_group, ["knowledge", str(tsv), "--through-nlu", "--threshold", "0.3"])
    assert result.exit_code == 2 and "without --encoder and --threshold" in result.output


def test_a_wrong_entry_for_a_question_it_does_not_cover_is_an_error_a_request_is_not() -> None:
    from dialogs.knowledge.evaluation import Heard, LabelledQuestion, evaluate_heard

    heard = {"cancel my order": Heard(requests=("cancel_order",)), "do you gift wrap": Heard(entries=("gift_cards",)),
             "when are you open": Heard(entries=("opening_hours",)), "how much is shipping": Heard()}
    questions = [LabelledQuestion("cancel my order", "-", 2), LabelledQuestion("do you gift wrap", "-", 3),
                 LabelledQuestion("when are you open", "opening_hours", 4),
                 LabelledQuestion("how much is shipping", "shipping_cost", 5)]
    report = evaluate_heard(heard.__getitem__, questions, threshold=0.25)
    assert report.unknown["accuracy"] == 0.5 and report.known["accuracy"] == 0.5
    assert [(e["line"], e["got"]) for e in report.errors] == [(3, "gift_cards"), (5, "-")]


def test_the_dialog_answers_then_starts_the_request_and_traces_entry_and_score(
        domain, knowledge: Knowledge, tmp_path: Path) -> None:
    nlu = NLU.train(domain, questions=knowledge)
    db = ensure_database(f"sqlite:///{tmp_path / 'bot.db'}", seed_demo=True, now=NOW)
    engine = DialogEngine(domain, nlu, db, EngineOptions(), clock=lambda: NOW, seed=7, knowledge=knowledge)
    session = engine.new_call(channel="chat", caller_id="+15551230001")
    session.start()
    reply = session.handle(Turn(text="what's your return policy, and I want to return my kettle"))
    assert [i["name"] for i in reply.intents] == [FAQ, "return_item"]
    assert reply.text.index("30 days") < reply.text.index("postcode")
    [trace] = reply.trace["knowledge"]
    assert trace["entry"] == "return_policy" and trace["probability"] >= knowledge.retriever.threshold
    assert session.knowledge_answered == ["return_policy"]


def test_a_cancel_sentence_gets_no_knowledge_answer(knowledge: Knowledge) -> None:
    # its nearest variant is Pay Later's (0.55), but it is more like what the bot does not answer
    verdict = knowledge.retriever.lookup("i am done with the plan")
    assert verdict.match is None and verdict.best is not None and verdict.best.entry.id == "pay_later"


def test_held_out_set_written_after_tuning(knowledge: Knowledge) -> None:
    # knowledge_heldout2.tsv was written after the margin rule and the extra questions were chosen on the dev set
    kb = knowledge.retriever.kb
    report = evaluate(knowledge.retriever, load_questions(DATA / "knowledge_heldout2.tsv", set(kb.ids())))
    assert report.n >= 80 and report.accuracy >= 0.9
    assert report.unknown["accuracy"] >= 0.85


@pytest.fixture(scope="module")
def nlu_with_faq(domain, knowledge: Knowledge) -> NLU:
    return NLU.train(domain, questions=knowledge)


@pytest.mark.parametrize(("text", "intents"), [
    ("what's your return policy, and I want to return my kettle", [FAQ, "return_item"]),
    ("how much does shipping cost", [FAQ]),
    ("how do I cancel an order I placed", [FAQ]),
    # stage two: an order number makes it the request, the knowledge base's topic alone does not
    ("how can i send back order three three four five one", ["return_item"]),
    ("how do i cook rice", ["out_of_scope"]),
    ("please help me send this vacuum back it stopped working", ["return_item"]),
    # the rest of a clause must be a request of its own, not a fragment such as "my password"
    ("my password reset email never shows up", ["reset_password"]),
])
def test_the_faq_act_is_confirmed_by_the_knowledge_base(nlu_with_faq: NLU, text: str, intents: list[str]) -> None:
    assert [i.name for i in nlu_with_faq.parse(text).intents] == intents


def test_the_faq_act_keeps_the_dev_set_exact_match(nlu_with_faq: NLU) -> None:
    # with the faq act learned by the same classifier this was 89.3 %; without any faq act 95.8 %
    from datetime import date

    from dialogs.nlu.evaluation import evaluate as evaluate_nlu
    from dialogs.nlu.evaluation import load_examples

    report = evaluate_nlu(nlu_with_faq, load_examples(DATA / "nlu_dev.tsv"), today=date(2025, 1, 15))
    assert report.exact_match >= 0.96


def test_held_out_set_3_written_before_the_classifier(knowledge: Knowledge) -> None:
    # knowledge_heldout3.tsv was written and measured once before the classifier and the extra questions
    # (84.5 %), and measured once after them (90.3 %): never tuned on
    kb = knowledge.retriever.kb
    report = evaluate(knowledge.retriever, load_questions(DATA / "knowledge_heldout3.tsv", set(kb.ids())))
    assert report.n >= 100 and report.accuracy >= 0.88
    assert report.known["accuracy"] >= 0.95


def test_held_out_set_4_written_before_the_not_answered_check(knowledge: Knowledge) -> None:
    # knowledge_heldout4.tsv (33 of 103 out of scope) was committed before not-answered.yaml was written and
    # measured once before it (82.5 %, out of scope 48.5 %) and once after (89.3 %, 69.7 %): never tuned on
    kb = knowledge.retriever.kb
    report = evaluate(knowledge.retriever, load_questions(DATA / "knowledge_heldout4.tsv", set(kb.ids())))
    assert report.n >= 100 and report.unknown["n"] >= 30
    assert report.accuracy >= 0.87 and report.unknown["accuracy"] >= 0.65
    assert report.known["accuracy"] >= 0.95
