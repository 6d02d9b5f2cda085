"""The catalog's rules (the e-commerce blueprint's code overlay): the name search, filters and
sorting by price, public reads and admin-only writes.

Yours: copied once by `microforge blueprint`, never overwritten by `copier update`.
"""

from decimal import Decimal

from fastapi.testclient import TestClient

from catalog_service.security import issue_dev_token
from catalog_service.settings import Settings

from ..factories import Factory
from ..support import assert_problem, collect_pages

SEARCH = "/v1/search/products"


def names(items: list[dict[str, object]]) -> list[str]:
    return [str(item["name"]) for item in items]


def test_search_finds_names_containing_the_text_whatever_the_case(
    client: TestClient, factory: Factory
) -> None:
    for name in ("Red Mug", "blue MUG", "Mugwort tea", "Plate", "100% cotton", "100 cotton"):
        factory.create_product(name=name)
    found = collect_pages(client, SEARCH, name="mug", sort="name", limit=1)
    assert sorted(names(found)) == ["Mugwort tea", "Red Mug", "blue MUG"]
    # LIKE's wildcards are plain characters in the text searched for
    assert names(collect_pages(client, SEARCH, name="0%")) == ["100% cotton"]
    assert names(collect_pages(client, SEARCH, name="_")) == []
    assert collect_pages(client, SEARCH, name="nothing like it") == []


def test_search_combines_category_price_range_and_sort_by_price(
    client: TestClient, factory: Factory
) -> None:
    kitchen = factory.create_category(name="Kitchen")["id"]
    garden = factory.create_category(name="Garden")["id"]
    for name, price, category in [
        ("Kitchen knife", "30.00", kitchen),
        ("Kitchen scale", "12.50", kitchen),
        ("Kitchen towel", "4.99", kitchen),
        ("Garden knife", "25.00", garden),
    ]:
        factory.create_product(name=name, price=price, category_id=category)
    query = {"category_id": kitchen, "price__gte": "5", "price__lte": "30"}
    cheap_first = collect_pages(client, SEARCH, name="KITCHEN", sort="price", **query)
    assert names(cheap_first) == ["Kitchen scale", "Kitchen knife"]
    dear_first = client.get(SEARCH, params={"name": "knife", "sort": "-price"}).json()["items"]
    assert names(dear_first) == ["Kitchen knife", "Garden knife"]
    # the generated list sorts and filters the same way (its name filter is equality)
    listed = collect_pages(client, "/v1/products", sort="-price", **query)
    assert [Decimal(item["price"]) for item in listed] == [Decimal("30.00"), Decimal("12.50")]


def test_search_refuses_bad_queries(client: TestClient) -> None:
    assert_problem(client.get(SEARCH, params={"price__gte": "cheap"}), 422, "price__gte")
    assert_problem(client.get(SEARCH, params={"sort": "description"}), 422, "sort")
    assert_problem(client.get(SEARCH, params={"name": "x\x00"}), 422, "name")


def test_reads_are_public_and_writes_need_admin(
    client: TestClient, anonymous_client: TestClient, factory: Factory, settings: Settings
) -> None:
    product = factory.create_product(name="Teapot")
    assert anonymous_client.get(f"/v1/products/{product['id']}").status_code == 200
    assert names(anonymous_client.get(SEARCH, params={"name": "teap"}).json()["items"]) == [
        "Teapot"
    ]
    assert anonymous_client.get("/v1/categories").status_code == 200
    body = factory.product_body()
    assert_problem(anonymous_client.post("/v1/products", json=body), 401)
    customer = issue_dev_token(settings, ["customer"], subject="a-customer")
    headers = {"Authorization": f"Bearer {customer}"}
    assert_problem(anonymous_client.post("/v1/products", json=body, headers=headers), 403)
    archive = f"/v1/products/{product['id']}/archive"
    assert_problem(anonymous_client.post(archive, headers=headers), 403)
    archived = client.post(archive)
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "ARCHIVED"
