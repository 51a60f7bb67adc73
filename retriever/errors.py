"""Errors the retriever raises on purpose."""

from __future__ import annotations


class RetrieverError(Exception):
    """Base class for the retriever's own errors."""


class BadQuestionError(RetrieverError):
    """The question is empty or too long to be a question."""


class EvalDataError(RetrieverError):
    """Evaluation files are missing or malformed."""


class CheckerError(RetrieverError):
    """The answer checker's weights are missing or do not fit the model."""
