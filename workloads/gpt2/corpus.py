"""The `gpt2-pydoc` corpus: English text that every CPython install carries offline.

Two sources, read at run time (nothing is copied into this repository):
- `pydoc_data.topics.topics`: the language-reference topics `help()` shows;
- the docstrings of the standard library's own source files, extracted with `ast`
  (no module is imported, so extraction has no side effects and needs no extras).

The held-out evaluation split is a fixed set of pydoc topics chosen by a stable rule
(a hash of the topic name), so it does not move when topics are added or removed.
Docstrings are training data only. A sha256 fingerprint of both splits is stored
with the checkpoint; a different Python version gives a different text, which is reported.
"""
from __future__ import annotations

import ast
import hashlib
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

END_OF_TEXT = "<|endoftext|>"
EVAL_HOLDOUT_MODULUS = 5  # about one topic in five is held out for evaluation

# Test suites and third-party installs are not standard-library documentation.
_SKIPPED_STDLIB_DIRS = frozenset({
    "test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
})


@dataclass(frozen=True)
class Document:
    """One unit of text: a pydoc topic or all docstrings of one stdlib module."""

    name: str
    text: str


@dataclass(frozen=True)
class CorpusSplits:
    """Training and held-out documents, in a deterministic order."""

    train: tuple[Document, ...]
    eval: tuple[Document, ...]


def fingerprint(documents: tuple[Document, ...]) -> str:
    """sha256 over the names and texts of `documents`, to detect a different corpus."""
    digest = hashlib.sha256()
    for doc in documents:
        for part in (doc.name, doc.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
    return digest.hexdigest()


def is_eval_topic(topic: str) -> bool:
    """Stable hold-out rule: independent of the other topics and of Python's hash seed."""
    digest = hashlib.sha256(topic.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % EVAL_HOLDOUT_MODULUS == 0


def pydoc_topics() -> tuple[Document, ...]:
    """The pydoc topics, sorted by name."""
    from pydoc_data.topics import topics
    return tuple(Document(f"pydoc:{name}", topics[name].strip()) for name in sorted(topics))


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_source_files(root: Path) -> list[Path]:
    """Library `.py` files under `root`, sorted by relative path, skipping tests and tools."""
    files = []
    for path in root.rglob("*.py"):
        relative_parts = path.relative_to(root).parts
        if any(part in _SKIPPED_STDLIB_DIRS for part in relative_parts[:-1]):
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def module_docstrings(source: str) -> list[str]:
    """Docstrings of a module, its classes and functions, in source order."""
    tree = ast.parse(source)
    nodes = [tree] + [node for node in ast.walk(tree)
                      if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    nodes.sort(key=lambda node: getattr(node, "lineno", 0))
    docstrings = []
    for node in nodes:
        text = ast.get_docstring(node, clean=True)
        if text and text.strip():
            docstrings.append(text.strip())
    return docstrings


def stdlib_docstring_documents(root: Path | None = None) -> tuple[Document, ...]:
    """One document per stdlib module that has docstrings; unparsable files are skipped."""
    root = stdlib_root() if root is None else root
    documents = []
    for path in stdlib_source_files(root):
        try:
            source = path.read_text(encoding="utf-8")
            docstrings = module_docstrings(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # e.g. deliberately broken test fixtures or legacy encodings
        if docstrings:
            name = "stdlib:" + path.relative_to(root).as_posix()
            documents.append(Document(name, "\n\n".join(docstrings)))
    return tuple(documents)


def split_topics(topics: tuple[Document, ...]) -> tuple[tuple[Document, ...], tuple[Document, ...]]:
    """(train, eval) topics. Some topics share one text (`if` and `else`): a text is held
    out when any of its names is, and appears once, so no held-out text is trained on."""
    eval_docs, eval_texts = [], set()
    for doc in topics:
        if is_eval_topic(doc.name.removeprefix("pydoc:")) and doc.text not in eval_texts:
            eval_docs.append(doc)
            eval_texts.add(doc.text)
    train_docs, train_texts = [], set()
    for doc in topics:
        if doc.text not in eval_texts and doc.text not in train_texts:
            train_docs.append(doc)
            train_texts.add(doc.text)
    return tuple(train_docs), tuple(eval_docs)


def eval_documents() -> tuple[Document, ...]:
    """The held-out pydoc topics (cheap: no stdlib parsing), for evaluation."""
    return split_topics(pydoc_topics())[1]


def load_splits() -> CorpusSplits:
    """Train = non-held-out pydoc topics + stdlib docstrings; eval = held-out topics."""
    train_topics, eval_topics = split_topics(pydoc_topics())
    return CorpusSplits(train=train_topics + stdlib_docstring_documents(), eval=eval_topics)


def token_stream(tokenizer, documents: tuple[Document, ...]) -> np.ndarray:
    """One int32 token array: the documents in order, each followed by END_OF_TEXT.

    `tokenizer` is a `tokenizers.Tokenizer`; the separator tells the model where a
    document ends, as in GPT-2's own training data.
    """
    end_id = tokenizer.token_to_id(END_OF_TEXT)
    if end_id is None:
        raise ValueError(f"tokenizer has no {END_OF_TEXT} token")
    pieces = []
    for encoding in tokenizer.encode_batch([doc.text for doc in documents]):
        pieces.append(np.asarray(encoding.ids, dtype=np.int32))
        pieces.append(np.asarray([end_id], dtype=np.int32))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)


def windows(stream: np.ndarray, window_tokens: int,
            max_windows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping next-token windows over `stream`: (inputs, targets), (n, W) int64.

    Window k covers tokens [k*W, (k+1)*W] so every token after the first is a target
    exactly once; a trailing partial window is dropped so the arrays are rectangular.
    """
    count = (len(stream) - 1) // window_tokens
    if max_windows is not None:
        count = min(count, max_windows)
    rows = np.stack([stream[k * window_tokens:(k + 1) * window_tokens + 1]
                     for k in range(count)]).astype(np.int64)
    return rows[:, :-1], rows[:, 1:]


def python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def warn_if_eval_text_changed(expected_sha256: str | None, checkpoint_python: str | None,
                              documents: tuple[Document, ...]) -> bool:
    """Warn (do not fail) when this Python's eval text differs from the checkpoint's.

    Returns True when the fingerprints match. Numbers are still meaningful relative to
    the FP reference measured on the same text, which is why this is only a warning.
    """
    if expected_sha256 is None or fingerprint(documents) == expected_sha256:
        return True
    warnings.warn(
        f"gpt2-pydoc corpus differs from the training corpus (checkpoint built with Python "
        f"{checkpoint_python or '?'}, this is Python {python_version()}); perplexities are "
        f"comparable to this run's FP reference but not to the published figure",
        stacklevel=2)
    return False
