"""Names of the AnnData keys the review writes (shared by the review modules)."""

from __future__ import annotations

__all__ = ["REVIEW_KEY", "REGION_KEY", "EXPRESSION_KEY", "MANUAL_KEY", "UNLABELLED_NAME", "default_name"]

#: ``uns`` key of the review (names, colours, log).
REVIEW_KEY = "senca_review"
#: ``obs`` column of the region display names.
REGION_KEY = "senca_region"
#: points-layer ``features`` column holding the values spots are coloured by.
EXPRESSION_KEY = "expression"
#: boolean ``obs`` column: True for spots the user assigned by hand.
MANUAL_KEY = "senca_manual"
#: label shown for spots without a pathologist label.
UNLABELLED_NAME = "unlabelled"


def default_name(cid: str) -> str:
    """Display name of a cluster that has not been renamed."""
    return f"cluster {cid}"
