import asyncio

from switchboard_context.main import build_app

if __name__ == "__main__":
    asyncio.run(build_app().run())
