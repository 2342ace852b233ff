"""The NLU is trained once per process for the same examples and features (training takes seconds; a test run or
several chats build many engines from one domain), and a different example set gets its own classifier."""

from __future__ import annotations

import pytest

from dialogs.domain import load_domain
from dialogs.nlu import NLU
from dialogs.nlu.classifier import fitted_classifier


def test_the_same_domain_trains_once_and_keeps_its_own_threshold() -> None:
    domain = load_domain()
    first, again = NLU.train(domain), NLU.train(domain, threshold=0.6)
    assert again.classifier is first.classifier and (first.threshold, again.threshold) == (0.45, 0.6)
    assert again.parse("where is my order").intents[0].name == "order_status"
    assert NLU.train(domain, heard=False).classifier is not first.classifier  # other examples


def test_other_examples_or_features_train_a_classifier_of_their_own() -> None:
    examples = {"greet": ["hello there", "hi"], "bye": ["goodbye", "see you later"]}
    first = fitted_classifier(examples)
    assert fitted_classifier({k: list(v) for k, v in examples.items()}) is first
    assert fitted_classifier({**examples, "bye": ["goodbye"]}) is not first
    assert fitted_classifier({**examples, "thanks": ["thank you"]}).classes == ["bye", "greet", "thanks"]
    assert first.classes == ["bye", "greet"]


def test_unknown_features_are_refused_before_training() -> None:
    with pytest.raises(ValueError, match="unknown NLU features 'bert'"):
        fitted_classifier({"a": ["x"], "b": ["y"]}, "bert")  # type: ignore[arg-type]
