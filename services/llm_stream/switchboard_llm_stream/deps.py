"""Handler dependencies, set on the FastStream context by the composition root (main.py)."""

from typing import Annotated

from switchboard_common.bus import LoopContext
from switchboard_llm_stream.calls import ModelCalls

Calls = Annotated[ModelCalls, LoopContext("model_calls")]
