from pydantic_settings import SettingsConfigDict

from switchboard_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACTION_EXECUTOR_", extra="ignore",
                                      populate_by_name=True)

    ack_wait_s: float = 30.0
    max_deliver: int = 5
