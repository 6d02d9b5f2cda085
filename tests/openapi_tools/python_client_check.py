"""Drives a served inventory service through the client that openapi-python-client generated from
its document (package `inventory_client` on PYTHONPATH): create, read, list with a filter, a
transition, a 422 and a 404 parsed into the typed `Problem`. Prints what it saw as JSON.

Run by tests/test_template_openapi.py in openapi-python-client's own environment (it holds the
client's dependencies: httpx, attrs, python-dateutil): `python python_client_check.py URL TOKEN`.
"""

import json
import sys
import uuid

from inventory_client import AuthenticatedClient
from inventory_client.api.category import category_create, category_list, category_read
from inventory_client.api.product import product_create, product_discontinue, product_read
from inventory_client.models import (
    CategoryCreate,
    CategoryPage,
    CategoryRead,
    Problem,
    ProblemFieldError,
    ProductCreate,
    ProductRead,
    ProductStatus,
)


def main(url: str, token: str) -> dict[str, object]:
    with AuthenticatedClient(base_url=url, token=token) as client:
        tools = category_create.sync(client=client, body=CategoryCreate(name="Tools"))
        assert isinstance(tools, CategoryRead), tools
        category_create.sync(client=client, body=CategoryCreate(name="Toys"))
        read = category_read.sync(tools.id, client=client)
        assert isinstance(read, CategoryRead), read
        page = category_list.sync(client=client, name="Toys")
        assert isinstance(page, CategoryPage), page
        body = ProductCreate(sku="HAMMER-1", name="Hammer", price="9.99", category_id=tools.id)
        product = product_create.sync(client=client, body=body)
        assert isinstance(product, ProductRead), product
        discontinued = product_discontinue.sync(product.id, client=client)
        assert isinstance(discontinued, ProductRead), discontinued
        refused = product_create.sync_detailed(
            client=client, body=ProductCreate(sku="not a sku", name="Saw", price="-1")
        )
        assert isinstance(refused.parsed, Problem), refused
        errors = refused.parsed.errors
        assert isinstance(errors, list), refused
        assert all(isinstance(error, ProblemFieldError) for error in errors), errors
        missing = product_read.sync_detailed(uuid.uuid4(), client=client)
        assert isinstance(missing.parsed, Problem), missing
        return {
            "read": read.name,
            "listed": [item.name for item in page.items],
            "status": discontinued.status.value,
            "discontinued": discontinued.status == ProductStatus.DISCONTINUED,
            "refused": [int(refused.status_code), refused.parsed.status],
            "refused_fields": sorted(error.field for error in errors),
            "missing": [int(missing.status_code), missing.parsed.status, missing.parsed.title],
        }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
