"""Your own tests of the service: examples to extend, with the fixtures of `tests/conftest.py`.

Yours: created once by microforge, never overwritten by `copier update`. `client` is an HTTP
client of a fresh app holding a token with every scope (rows it writes are deleted afterwards),
`anonymous_client` one without a token, `settings` the test settings and `factory` builds valid
bodies and rows (`tests/factories.py`).
"""

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from identity_service.custom_routes import router
from identity_service.custom_settings import CustomSettings
from identity_service.settings import Settings


def test_your_routes_and_settings_are_wired(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    for route in router.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            assert route.path in paths, route.path
    assert set(CustomSettings.model_fields) <= set(Settings.model_fields)


def test_service_is_ready(client: TestClient, settings: Settings) -> None:
    assert settings.app_env == "test"
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok"
