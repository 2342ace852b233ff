"""Knowledge answers: the company's own FAQ, one entry per topic, found by meaning.

    from dialogs.knowledge import load_knowledge, Retriever
    kb = load_knowledge("dialogs/domains/retail/knowledge")
    verdict = Retriever(kb).lookup("when are you open")   # verdict.match is None: "I don't know"
"""

from dialogs.knowledge.base import KnowledgeBase, KnowledgeEntry, KnowledgeError, load_knowledge
from dialogs.knowledge.retrieval import (
    DEFAULT_THRESHOLD,
    Encoder,
    KnowledgeLookup,
    KnowledgeMatch,
    Retriever,
    TfidfEncoder,
    sentence_encoder,
)

__all__ = [
    "DEFAULT_THRESHOLD", "Encoder", "KnowledgeBase", "KnowledgeEntry", "KnowledgeError", "KnowledgeLookup", "KnowledgeMatch",
    "Retriever", "TfidfEncoder", "load_knowledge", "sentence_encoder",
]
