"""What the dialog needs from the knowledge base: the ``faq`` act the NLU learns from the entries' questions,
and the answers to a turn's question clauses."""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.domain.schema import Domain, Intent
from dialogs.knowledge.base import KnowledgeBase, load_knowledge
from dialogs.knowledge.retrieval import KnowledgeLookup, Retriever

FAQ = "faq"  # the dialog act of a clause that asks a public question the knowledge base may answer
OUT_OF_SCOPE = "out_of_scope"


def with_faq_act(domain: Domain, kb: KnowledgeBase) -> Domain:
    """The domain the NLU trains on: its intents plus ``faq``, whose examples are every entry's questions, so
    "what is your return policy" is told from "I want to return my kettle"."""
    faq = Intent(description="a public question the knowledge base answers",
                 examples=[q for e in kb.entries for q in e.questions])
    return domain.model_copy(update={"intents": {**domain.intents, FAQ: faq}})


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

    def answer(self, questions: list[str]) -> list[KnowledgeLookup]:
        """One verdict per question clause, in order."""
        return [self.retriever.lookup(q) for q in questions]
