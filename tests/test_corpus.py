"""The gpt2-pydoc corpus: stable held-out rule, disjoint splits, docstring extraction, windows."""
import warnings

import numpy as np
import pytest

from workloads.gpt2 import corpus
from workloads.gpt2.corpus import (
    END_OF_TEXT, Document, eval_documents, fingerprint, is_eval_topic, load_splits,
    module_docstrings, stdlib_docstring_documents, stdlib_root, token_stream,
    warn_if_eval_text_changed, windows,
)


@pytest.fixture(scope="module")
def splits():
    return load_splits()


def test_holdout_rule_is_a_fixed_function_of_the_topic_name():
    # sha256 prefixes: async 2d4a6334, with 0695b563 (both = 0 mod 5); assert, lambda = 4 mod 5
    assert [is_eval_topic(name) for name in ("async", "with", "assert", "lambda")] == \
        [True, True, False, False]


def test_splits_are_disjoint_and_cover_all_topics(splits):
    from pydoc_data.topics import topics
    train_names = {doc.name for doc in splits.train}
    eval_names = {doc.name for doc in splits.eval}
    assert not train_names & eval_names
    topic_names = {f"pydoc:{name}" for name in topics}
    duplicated_text = {"pydoc:else"}  # same text as the held-out topic `if`
    assert eval_names | (train_names & topic_names) | duplicated_text == topic_names
    assert 0.1 < len(eval_names) / len(topic_names) < 0.35
    assert all(name.startswith("pydoc:") for name in eval_names)
    assert any(name.startswith("stdlib:") for name in train_names)
    assert not any("/test/" in name or name.startswith("stdlib:test/") for name in train_names)
    eval_texts = {doc.text for doc in splits.eval}
    assert not any(doc.text in eval_texts for doc in splits.train)


def test_a_text_shared_by_two_topics_is_held_out_once():
    topics = (Document("pydoc:async", "shared"), Document("pydoc:assert", "shared"),
              Document("pydoc:lambda", "own"))
    train, held_out = corpus.split_topics(topics)
    assert [doc.name for doc in held_out] == ["pydoc:async"]
    assert [doc.name for doc in train] == ["pydoc:lambda"]


def test_eval_documents_equal_the_eval_split(splits):
    assert eval_documents() == splits.eval
    assert [doc.name for doc in splits.eval] == sorted(doc.name for doc in splits.eval)


def test_docstring_extraction_is_deterministic_and_sorted():
    root = stdlib_root()
    first = stdlib_docstring_documents(root / "json")
    second = stdlib_docstring_documents(root / "json")
    assert first == second
    assert [doc.name for doc in first] == sorted(doc.name for doc in first)
    assert first[0].name == "stdlib:__init__.py"
    assert first[0].text.startswith("JSON (JavaScript Object Notation)")


def test_module_docstrings_in_source_order_without_code():
    source = '''"""Module doc."""
def f():
    """Function doc."""
    return "not a docstring"
class C:
    """Class doc."""
    def m(self):
        x = 1
'''
    assert module_docstrings(source) == ["Module doc.", "Function doc.", "Class doc."]


def test_fingerprint_changes_with_text_and_warning_is_only_a_warning():
    documents = (Document("pydoc:a", "alpha"), Document("pydoc:b", "beta"))
    changed = (Document("pydoc:a", "alpha"), Document("pydoc:b", "beta!"))
    assert fingerprint(documents) == fingerprint(tuple(documents))
    assert fingerprint(documents) != fingerprint(changed)
    assert warn_if_eval_text_changed(fingerprint(documents), "3.11.7", documents)
    with pytest.warns(UserWarning, match="Python 3.11.7"):
        assert not warn_if_eval_text_changed(fingerprint(documents), "3.11.7", changed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_eval_text_changed(None, None, changed)


class _CharTokenizer:
    """One id per character, END_OF_TEXT = 0: enough to check stream layout by hand."""

    def token_to_id(self, token):
        return 0 if token == END_OF_TEXT else None

    def encode_batch(self, texts):
        return [type("Encoding", (), {"ids": [ord(c) for c in text]})() for text in texts]


def test_token_stream_separates_documents_with_end_of_text():
    stream = token_stream(_CharTokenizer(), (Document("a", "ab"), Document("b", "c")))
    assert stream.tolist() == [97, 98, 0, 99, 0]
    assert stream.dtype == np.int32


def test_windows_predict_each_token_once_and_drop_the_tail():
    inputs, targets = windows(np.arange(11), window_tokens=3)
    assert inputs.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert targets.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert inputs.dtype == np.int64
    assert windows(np.arange(11), 3, max_windows=1)[0].tolist() == [[0, 1, 2]]


def test_python_version_string():
    assert corpus.python_version().count(".") == 2
