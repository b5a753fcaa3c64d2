"""Handler dependencies, set on the FastStream context by the composition root (main.py)."""

from typing import Annotated

from faststream import Context

from switchboard_common.ingest_batches import IngestBatches
from switchboard_memory_indexer.service.memory import MemoryService
from switchboard_memory_indexer.settings import Settings

Memory = Annotated[MemoryService, Context("memory")]
Batches = Annotated[IngestBatches, Context("batches")]
Config = Annotated[Settings, Context("settings")]
