"""One node per stage (DESIGN.md); approvals are nodes of their own, with one interrupt each."""
