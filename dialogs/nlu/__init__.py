"""Understanding (NLU): one utterance in, an ordered list of intents with slots out.

    from dialogs.nlu import NLU
    nlu = NLU.train(load_domain())
    nlu.parse("I moved, so update my address and tell me where my order is").intents
"""

from dialogs.nlu.entities import Entity
from dialogs.nlu.parser import NLU, IntentHit, ParseResult

__all__ = ["NLU", "Entity", "IntentHit", "ParseResult"]
