"""Handler dependencies, placed on the FastStream context by the composition root."""

from typing import Annotated

from faststream import Context

from switchboard_common.conversations import ConversationStore
from switchboard_context.adapters.skills_cache import SkillResolver
from switchboard_context.flow import TurnFlow

Flow = Annotated[TurnFlow, Context("flow")]
Skills = Annotated[SkillResolver, Context("skills")]
Conversations = Annotated[ConversationStore, Context("conversations")]
