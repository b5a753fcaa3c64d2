"""python -m switchboard_gateway: serve the gateway with uvicorn."""

import uvicorn

from switchboard_common import telemetry
from switchboard_gateway.main import create_app
from switchboard_gateway.settings import Settings


def main() -> None:
    settings = Settings()
    telemetry.setup("gateway", settings.log_level)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        ws="websockets-sansio", ws_max_size=settings.max_frame_bytes,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        log_config=None, log_level=settings.log_level.lower(), access_log=False,
    )


if __name__ == "__main__":
    main()
