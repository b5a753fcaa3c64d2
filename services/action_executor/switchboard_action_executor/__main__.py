import uvloop

from switchboard_action_executor.main import build_app

if __name__ == "__main__":
    uvloop.run(build_app().run())
