"""python -m switchboard_gateway: serve the gateway with uvicorn."""

import signal

import uvicorn

from switchboard_common.telemetry import setup as setup_telemetry
from switchboard_gateway.main import create_app
from switchboard_gateway.settings import Settings


def main() -> None:
    settings = Settings()
    setup_telemetry("gateway", settings.log_level)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    # handler that was installed before it. A no-op one makes a clean shutdown exit 0, like
    # the other services, instead of dying by the re-raised signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        ws="websockets-sansio", ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_compression,
        proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        log_config=None, log_level=settings.log_level.lower(), access_log=False,
    )


if __name__ == "__main__":
    main()
