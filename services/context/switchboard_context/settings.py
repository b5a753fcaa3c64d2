from pydantic_settings import SettingsConfigDict

from switchboard_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXT_", extra="ignore", populate_by_name=True)

    ack_wait_s: float = 30.0
    max_deliver: int = 5
    history_messages: int = 20
    """How many recent messages (user + assistant) go into the prompt."""
    max_tokens: int = 512
    model: str | None = None
    """Model preference passed to llm_stream; None = the provider's configured default."""
    system_prompt: str = (
        "You are Switchboard, a concise and helpful executive assistant. "
        "You are working for the client named {client_id}."
    )
    pending_ttl_s: int = 24 * 3600
