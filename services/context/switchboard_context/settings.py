from pydantic_settings import SettingsConfigDict

from switchboard_common.settings import WorkerSettings


class Settings(WorkerSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXT_", extra="ignore", populate_by_name=True)

    ack_wait_s: float = 30.0
    max_deliver: int = 5
    history_token_budget: int = 2000
    """Recent conversation in a full prompt; beyond it older turns are summarised."""
    lite_messages: int = 4
    """How many recent messages a lite prompt carries."""
    max_tokens: int = 1024
    """Upper bound on answer tokens, whatever the skills ask for."""
    simple_model: str | None = None
    """Model for simple requests when no skill tier picks one; None = provider default."""
    complex_model: str | None = None
    summary_max_tokens: int = 300
    summary_deadline_s: float = 120.0
    turn_active_ttl_s: float = 620.0
    """How long one turn may hold its conversation before the next one may start."""
    pending_ttl_s: int = 24 * 3600
    skills_cache_ttl_s: float = 300.0
    memory_search: bool = True
    memory_timeout_floor_s: float = 0.25
    memory_timeout_ceiling_s: float = 3.0
    """The memory search budget follows measured search time (x memory_timeout_factor, see
    adapters/memory.py), kept between the floor and the ceiling."""
    memory_timeout_factor: float = 3.0
    memory_k: int = 6
    """Retrieved items in a full prompt."""
    lite_memory_items: int = 2
    """Retrieved items in a lite prompt: lite stays lite by count, not by skipping memory."""
    sweep_interval_s: float = 1.0
    tools: bool = True
    """Offer the client's enabled tools to the model and run the tool-use loop."""
    tool_max_iterations: int = 6
    """Model calls per turn, the first included; the loop stops there."""
    tool_token_budget: int = 60_000
    """Tokens (input + output, all model calls of a turn) after which the loop stops."""
    conversation_taint_ttl_s: int = 7 * 24 * 3600
    """After a turn read untrusted content, later turns of its conversation count as tainted
    for this long: its answer, and the summary of it, carry that content into their prompts."""
    triggers: bool = True
    """React to ingested events with the clients' trigger rules (background turns)."""
    trigger_per_client_per_min: int = 10
    trigger_per_org_per_min: int = 100
    """Background turns started per minute; more wait for the next minute (delayed
    redelivery)."""
    trigger_max_deliver: int = 50
    """Deliveries of one event to the trigger consumer: quiet hours and rate limits each cost
    one."""
    background_deadline_s: float = 120.0
