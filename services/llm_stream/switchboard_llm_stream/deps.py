"""Handler dependencies, set on the FastStream context by the composition root (main.py)."""

from typing import Annotated

from faststream import Context

from switchboard_llm_stream.calls import ModelCalls

Calls = Annotated[ModelCalls, Context("model_calls")]
