"""Handler dependencies, set on the FastStream context by the composition root (main.py)."""

from typing import Annotated

from switchboard_common.bus import LoopContext
from switchboard_common.ingest_batches import IngestBatches
from switchboard_memory_indexer.service.memory import MemoryService
from switchboard_memory_indexer.settings import Settings

Memory = Annotated[MemoryService, LoopContext("memory")]
Batches = Annotated[IngestBatches, LoopContext("batches")]
Config = Annotated[Settings, LoopContext("settings")]
