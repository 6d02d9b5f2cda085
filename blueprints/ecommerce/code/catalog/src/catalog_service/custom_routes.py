"""The catalog's search: `GET /v1/search/products`, the product list whose `name` filter finds
the products whose name *contains* the text, case-insensitively (the generated
`GET /v1/products` compares names for equality). Every other parameter is the list's own:
`category_id`, `status`, `price`, `price__gte`/`price__lte`, `sort` (e.g. `price` or `-price`),
`limit` and `cursor` (keyset pages, as `/v1/products`). Public, like the product list.

Yours (the e-commerce blueprint's code overlay): copied once into the service by `microforge
blueprint`, never overwritten by `copier update`.
"""

from collections.abc import Mapping
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import ConfigDict

from .pagination import query_filters
from .problems import problem_responses
from .repositories.product import ProductRepository, get_product_repository
from .schemas.product import ProductListQuery, ProductPage, ProductRead
from .types import Text

router = APIRouter()


class ProductSearchQuery(ProductListQuery):
    """Query of `GET /v1/search/products`: the list's filters, with `name` matching a part."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    name: Text | None = None
    """Only the products whose name contains this text (case-insensitive)."""


class SearchRepository(ProductRepository):
    """The product repository whose `name` filter is a case-insensitive "contains"."""

    def _filter_clauses(self, filters: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        rest = {key: value for key, value in filters.items() if key != "name"}
        clauses = super()._filter_clauses(rest)
        name = filters.get("name")
        if isinstance(name, str) and name:
            # LIKE's own wildcards in the text are escaped: "50%" finds "50%", not "50 cm".
            clauses.append(self.model.name.icontains(name, autoescape=True))
        return clauses


async def get_search_repository(
    repo: Annotated[ProductRepository, Depends(get_product_repository)],
) -> SearchRepository:
    """The request's product repository, searching names by part."""
    return SearchRepository(
        repo.session, settings=repo.context.settings, request=repo.context.request
    )


@router.get(
    "/v1/search/products",
    name="product_search",
    response_model=ProductPage,
    responses=problem_responses(422, 429, 503),
    tags=["Product"],
    summary="Search products by part of their name",
)
async def search_products(
    query: Annotated[ProductSearchQuery, Query()],
    repo: Annotated[SearchRepository, Depends(get_search_repository)],
) -> ProductPage:
    page = await repo.list_page(
        filters=query_filters(query), sort=query.sort, limit=query.limit, cursor=query.cursor
    )
    return ProductPage(
        items=[ProductRead.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )
