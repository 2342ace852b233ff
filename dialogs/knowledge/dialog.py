"""What the dialog needs from the knowledge base: the ``faq`` act the NLU learns from the entries' questions
(and confirms with the retriever), and the answers to a turn's question clauses."""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.domain.schema import Domain
from dialogs.knowledge.base import load_knowledge
from dialogs.knowledge.retrieval import KnowledgeLookup, Retriever
from dialogs.nlu.parser import FAQ, OUT_OF_SCOPE

__all__ = ["FAQ", "OUT_OF_SCOPE", "Knowledge"]


@dataclass(frozen=True)
class Knowledge:
    """A domain's knowledge base, loaded once per process and shared by its calls."""

    retriever: Retriever

    @classmethod
    def for_domain(cls, domain: Domain) -> Knowledge | None:
        """None if the domain names no knowledge folder (``knowledge:``)."""
        if domain.knowledge is None:
            return None
        oos = domain.intents.get(OUT_OF_SCOPE)
        negatives = list(oos.examples) if oos is not None else []
        return cls(Retriever(load_knowledge(domain.knowledge), negatives=negatives))

    def examples(self) -> list[str]:
        """Every entry's questions: the NLU's examples of the ``faq`` act (:class:`dialogs.nlu.parser.Questions`)."""
        return [q for e in self.retriever.kb.entries for q in e.questions]

    def score(self, text: str) -> float:
        """How near ``text`` is to the knowledge base's topics: its nearest entry's score, even when the answer
        would be "I don't know" (:class:`dialogs.nlu.parser.Questions`)."""
        best = self.retriever.lookup(text).best
        return best.score if best is not None else 0.0

    def answer(self, questions: list[str]) -> list[KnowledgeLookup]:
        """One verdict per question clause, in order."""
        return [self.retriever.lookup(q) for q in questions]
