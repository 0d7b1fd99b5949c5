"""One vocabulary for the state of a pharmacogenomic test, used by every stage.

A gene with no result is ``not-tested``; a result that cannot be translated is ``indeterminate``; results
that disagree are a ``conflict``. None of them is ever read as normal. The enum is a ``str`` enum, so a value
compares equal to its text, JSON carries the text, and a data-gap code is ``gene-<value>``.
"""

from __future__ import annotations

import enum

__all__ = ["GeneStatus"]


class GeneStatus(enum.StrEnum):
    """Test status of one gene for one patient."""

    TESTED = "tested"
    NOT_TESTED = "not-tested"
    INDETERMINATE = "indeterminate"
    CONFLICT = "conflict"

    @property
    def label(self) -> str:
        """The words for people: ``not tested``, ``indeterminate``, ..."""
        return self.value.replace("-", " ")

    @property
    def is_gap(self) -> bool:
        """True when the gene's result cannot be relied on (not tested, indeterminate or in conflict)."""
        return self is not GeneStatus.TESTED
