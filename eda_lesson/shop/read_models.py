"""The shop's read models: orders by status, and revenue per customer, projected from the store.

Each is a :class:`~eda_lesson.patterns.projections.Projection`: it follows every event of the
store in global order and keeps one shape up to date, so it can be thrown away and rebuilt.
"""

from __future__ import annotations

from typing import ClassVar

from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.projections import Projection
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid, OrderShipped

__all__ = ["OrdersByStatus", "RevenuePerCustomer"]


class OrdersByStatus(Projection):
    """Which orders are created, paid, shipped or cancelled."""

    STATUSES: ClassVar[tuple[str, ...]] = ("created", "paid", "shipped", "cancelled")

    status: dict[str, str]

    def reset(self) -> None:
        super().reset()
        self.status = {}

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.status[event.order_id] = "created"

    @applies(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        self.status[event.order_id] = "paid"

    @applies(OrderShipped)
    def _shipped(self, event: OrderShipped) -> None:
        self.status[event.order_id] = "shipped"

    @applies(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        self.status[event.order_id] = "cancelled"

    def by_status(self) -> dict[str, list[str]]:
        """Order ids per status (every status listed, in the life cycle's order)."""
        groups: dict[str, list[str]] = {status: [] for status in self.STATUSES}
        for order_id, status in self.status.items():
            groups.setdefault(status, []).append(order_id)
        return groups

    def snapshot(self) -> dict[str, str]:
        return dict(self.status)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{status} {len(ids)}" for status, ids in self.by_status().items() if ids
        )
        return f"OrdersByStatus(at position {self.position}: {counts or 'no orders'})"


class RevenuePerCustomer(Projection):
    """Money received per customer: payments in, minus what cancelled paid orders refunded."""

    revenue: dict[str, float]
    customer_of: dict[str, str]
    paid: dict[str, float]

    def reset(self) -> None:
        super().reset()
        self.revenue = {}
        self.customer_of = {}
        self.paid = {}

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.customer_of[event.order_id] = event.customer_id
        self.revenue.setdefault(event.customer_id, 0.0)

    @applies(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        customer = self.customer_of.get(event.order_id, "unknown")
        self.revenue[customer] = self.revenue.get(customer, 0.0) + event.amount
        self.paid[event.order_id] = event.amount

    @applies(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        refund = self.paid.pop(event.order_id, 0.0)
        if refund:
            customer = self.customer_of.get(event.order_id, "unknown")
            self.revenue[customer] -= refund

    def snapshot(self) -> dict[str, float]:
        return dict(self.revenue)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{c}={amount:g}" for c, amount in sorted(self.revenue.items()))
        return f"RevenuePerCustomer(at position {self.position}: {pairs or 'no customers'})"
