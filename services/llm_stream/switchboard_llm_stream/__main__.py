import asyncio

from switchboard_llm_stream.main import build_app

if __name__ == "__main__":
    asyncio.run(build_app().run())
