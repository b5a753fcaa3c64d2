"""docs/asyncapi/*.yaml are what the services declare: regenerate with `./dev asyncapi`."""

import importlib
from pathlib import Path

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"
APPS = {
    "context": "switchboard_context.main",
    "llm_stream": "switchboard_llm_stream.main",
    "action_executor": "switchboard_action_executor.main",
    "memory_indexer": "switchboard_memory_indexer.main",
    "gateway": "switchboard_gateway.asyncapi",
}


@pytest.mark.parametrize("service", sorted(APPS))
def test_committed_asyncapi_matches_the_code(service: str) -> None:
    app = importlib.import_module(APPS[service]).build_app()
    generated = yaml.safe_load(app.schema.to_specification().to_yaml())
    committed = yaml.safe_load((DOCS / f"{service}.yaml").read_text())
    assert generated["channels"] == committed["channels"], (
        f"docs/asyncapi/{service}.yaml is stale: run ./dev asyncapi")
    assert generated["components"] == committed["components"]
