import asyncio

from switchboard_action_executor.main import build_app

if __name__ == "__main__":
    asyncio.run(build_app().run())
