"""Per-request context: who is calling, the service, and loaders that read each thing once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from graph.limits import PersistedDocument
from licensing.orchestration.service import DistrictState, LicensingService
from licensing.storage.tokens import Principal


@dataclass
class GraphContext:
    principal: Principal
    service: LicensingService
    district_states: DataLoader[int, DistrictState] = field(init=False)
    # By Node type (graph.nodes): the objects node(id:) and nodes(ids:) name, read once.
    node_loaders: dict[type[Any], DataLoader[str, Any]] = field(init=False, default_factory=dict)
    # A document sent by its hash (graph/persisted.py): already parsed and validated.
    persisted: PersistedDocument | None = field(default=None, kw_only=True)
    # The entity tag a GET query's answer would carry (graph/conditional.py), and whether the
    # operation, once run, may carry it.
    etag: str | None = field(default=None, kw_only=True)
    etag_allowed: bool = field(default=False, kw_only=True)
    # What the operation was charged (graph/cost.py), once measured.
    operation_cost: int | None = field(default=None, kw_only=True)
    # The answer's data, when it may be kept as a snapshot (graph/answers.py), and until when.
    keepable_data: object | None = field(default=None, kw_only=True)
    # The district states the operation read: a kept answer expires with the first of them.
    states_read: list[DistrictState] = field(default_factory=list, kw_only=True)

    def __post_init__(self) -> None:
        async def load_states(district_ids: list[int]) -> list[DistrictState]:
            states = [
                await self.service.district_state(district_id) for district_id in district_ids
            ]
            self.states_read.extend(states)
            return states

        # license, usage and alerts in one request share one read of the district.
        self.district_states = DataLoader(load_fn=load_states)

    async def district_state(self) -> DistrictState:
        return await self.district_states.load(self.principal.district_id)

    def remember_district_state(self, state: DistrictState) -> None:
        """After a mutation, later fields in the same request see the new state."""
        self.states_read.append(state)
        self.district_states.prime(self.principal.district_id, state, force=True)
