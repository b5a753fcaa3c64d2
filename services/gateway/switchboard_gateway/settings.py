from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from switchboard_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_message_bytes: int = Field(16 * 1024, gt=0)
    """Largest `text` of a user message (UTF-8 bytes); larger gets `message_too_large`."""
    max_frame_bytes: int = Field(1024 * 1024, gt=0)
    """The WebSocket layer drops the connection above this (1009); between the two limits the
    client gets a `message_too_large` frame instead, without the frame being parsed."""
    turn_deadline_s: float = Field(120.0, gt=0)
    """A turn with neither `turn_completed` nor `error` by then gets `turn_timeout`."""
    idempotency_ttl_s: int = Field(900, gt=0)
    """How long an idempotency key (and turn ownership) is remembered. Matches how long
    SB_TURN_EVENTS keeps a turn's events, so a duplicate within it replays the outcome."""
    max_outbox_frames: int = Field(50_000, gt=0)
    """Frames queued for one socket before it is closed as too slow (1013)."""
    decide_timeout_s: float = Field(45.0, gt=0)
    """How long an approval waits for the action_executor (it executes the approved action
    before answering, bounded by the tool's timeout and retries)."""
    dev_org: str = "dev"
    dev_user: str = "dev"
    """Identity when the client names none (dev credential until auth lands)."""
    skills_resolve_timeout_s: float = Field(2.0, gt=0)
    """How long `GET .../skills/resolved` waits for a context replica before answering 503."""
    memory_timeout_s: float = Field(3.0, gt=0)
    """How long a memory search waits for memory_indexer before answering 503."""
    memory_forget_timeout_s: float = Field(30.0, gt=0)
    """Forgetting a whole client can take a while on a large index."""
    auto_provision_clients: bool | None = None
    """A `user_message` naming an unknown client creates it (name = id, assigned to the
    caller) instead of refusing it with `unknown_client`. Unset: on in development only, so
    `./dev up` works out of the box and production needs clients created through the API."""

    @model_validator(mode="after")
    def _provision_default(self) -> "Settings":
        if self.auto_provision_clients is None:
            self.auto_provision_clients = self.environment == "development"
        return self
