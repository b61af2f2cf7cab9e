"""Every endpoint and status code, for each cache backend, strategy and shared store."""

import pytest

SEED = {"name": "HelloWorld", "views": 147, "likes": 3}
NEW = {"name": "Cats", "views": 10, "likes": 2}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request):
    """Each store shared by the workers (PostgreSQL is a real server)."""
    return request.param


@pytest.fixture
def app(make_app, backend, strategy, store):
    """A fresh app for every backend, strategy and store."""
    return make_app(CACHE_BACKEND=backend, CACHE_STRATEGY=strategy, VIDEOS_STORE=store)


def test_get_seeded_video(client):
    response = client.get("/videos/1")
    assert response.status_code == 200
    assert response.get_json() == SEED


def test_get_unknown_video_is_404(client):
    response = client.get("/videos/2")
    assert response.status_code == 404
    assert response.get_json() == {"message": "video doesn't exist"}


def test_put_stores_and_returns_the_video(client):
    response = client.put("/videos/2", json=NEW)
    assert response.status_code == 201
    assert response.get_json() == NEW
    assert client.get("/videos/2").get_json() == NEW


def test_delete_is_204_with_empty_body_then_404(client):
    response = client.delete("/videos/1")
    assert response.status_code == 204
    assert response.data == b""
    assert client.get("/videos/1").status_code == 404
    again = client.delete("/videos/1")
    assert again.status_code == 404
    assert again.get_json() == {"message": "video doesn't exist"}


def test_get_put_get_shows_the_write(client, strategy):
    """The tutorial's own check; memoize is the tutorial's pitfall and may serve stale data."""
    assert client.get("/videos/1").get_json() == SEED
    assert client.put("/videos/1", json=NEW).status_code == 201
    second = client.get("/videos/1")
    assert second.status_code == 200
    if strategy != "memoize":
        assert second.get_json() == NEW


def test_get_delete_get_shows_the_delete(client, strategy):
    assert client.get("/videos/1").status_code == 200
    assert client.delete("/videos/1").status_code == 204
    if strategy != "memoize":
        assert client.get("/videos/1").status_code == 404


def test_deleted_video_comes_back_with_put(client):
    client.get("/videos/1")
    client.delete("/videos/1")
    client.get("/videos/1")
    assert client.put("/videos/1", json=NEW).status_code == 201
    assert client.get("/videos/1").get_json() == NEW


@pytest.mark.parametrize("method", ["post", "patch"])
def test_other_methods_are_405_json(client, method):
    response = getattr(client, method)("/videos/1", json=NEW)
    assert response.status_code == 405
    assert "message" in response.get_json()


def test_unknown_path_is_404_json(client):
    response = client.get("/nothing")
    assert response.status_code == 404
    assert "message" in response.get_json()


def test_health_says_what_is_served(client, backend, strategy, store):
    body = client.get("/health").get_json()
    assert body["status"] == "ok"
    assert (body["cache_backend"], body["cache_strategy"], body["store"]) == (
        backend,
        strategy,
        store,
    )
    assert body["cache"] == ("none" if backend == "none" else "ok")
