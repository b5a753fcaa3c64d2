"""Switchboard memory_indexer: indexes turns and events per client; serves hybrid search."""
