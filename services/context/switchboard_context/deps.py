"""Handler dependencies, placed on the FastStream context by the composition root."""

from typing import Annotated

from switchboard_common.bus import LoopContext
from switchboard_common.conversations import ConversationStore
from switchboard_context.adapters.skills_cache import SkillResolver
from switchboard_context.flow import TurnFlow

Flow = Annotated[TurnFlow, LoopContext("flow")]
Skills = Annotated[SkillResolver, LoopContext("skills")]
Conversations = Annotated[ConversationStore, LoopContext("conversations")]
