"""Use cases: index, search, forget, re-index. They orchestrate the ports; no bus code here."""
