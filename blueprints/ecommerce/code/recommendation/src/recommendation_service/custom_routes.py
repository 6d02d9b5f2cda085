"""The public recommendations: `GET /v1/recommendations?product_id=` answers the products most
often bought together with it (from the co-purchase counts of confirmed orders).

Yours: created once by microforge, never overwritten by `copier update`.
"""

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from .models.pair import Pair
from .repositories.pair import PairRepository, get_pair_repository

router = APIRouter()


class Recommendation(BaseModel):
    """A product bought together with the asked one, and how often."""

    product_id: uuid.UUID = Field(description="The product bought together with the asked one.")
    count: int = Field(ge=1, description="How many confirmed orders had both.")


class Recommendations(BaseModel):
    """The products most often bought together with the asked one, most first."""

    items: list[Recommendation] = Field(description="Most bought together first.")


@router.get(
    "/v1/recommendations",
    operation_id="recommendations_for_product",
    tags=["Recommendation"],
    summary="Products bought together with a product",
)
async def recommendations(
    product_id: Annotated[uuid.UUID, Query(description="The product to recommend for.")],
    repository: Annotated[PairRepository, Depends(get_pair_repository)],
    limit: Annotated[int, Query(ge=1, le=50, description="At most this many.")] = 10,
) -> Recommendations:
    """Public: the co-purchase counts of `product_id`, most bought together first (ties by
    product id)."""
    total = sa.func.sum(Pair.count).label("total")
    statement = (
        sa.select(Pair.other_id, total)
        .where(Pair.product_id == product_id)
        .group_by(Pair.other_id)
        .having(sa.func.sum(Pair.count) > 0)
        .order_by(total.desc(), Pair.other_id)
        .limit(limit)
    )
    rows = (await repository.session.execute(statement)).all()
    return Recommendations(
        items=[Recommendation(product_id=other, count=int(count)) for other, count in rows]
    )
