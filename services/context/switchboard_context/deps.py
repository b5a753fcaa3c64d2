"""Handler dependencies, set on the FastStream context by the composition root (main.py)."""

from typing import Annotated

from faststream import Context

from switchboard_context.adapters.conversations import ConversationStore
from switchboard_context.settings import Settings

Store = Annotated[ConversationStore, Context("store")]
Config = Annotated[Settings, Context("settings")]
