"""What the ``dataSources`` query shows: each roster source of a district and how its syncs went."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from db.models import RosterRecord, RosterSyncRun
from licensing.settings import RosterSourceConfig


@dataclass(frozen=True)
class DataSourceView:
    name: str
    kind: str
    configured: bool
    last_status: str | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    records: int | None = None
    active_students: int | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    server_count: int | None = None
    held: bool = False
    last_sync_mode: str | None = None  # full or delta: the last applied sync's
    last_full_sync_at: datetime | None = None


def data_sources(
    session: Session, *, district_id: int, configured: dict[str, RosterSourceConfig]
) -> list[DataSourceView]:
    """Configured sources first (in name order), then any other source that holds records."""
    holding = session.exec(
        select(RosterRecord.source).where(RosterRecord.district_id == district_id).distinct()
    ).all()
    names = sorted(configured) + sorted(set(holding) - set(configured))
    return [_view(session, district_id, name, configured.get(name)) for name in names]


def _view(
    session: Session, district_id: int, name: str, config: RosterSourceConfig | None
) -> DataSourceView:
    runs = select(RosterSyncRun).where(
        RosterSyncRun.district_id == district_id, RosterSyncRun.source == name
    )
    latest = session.exec(runs.order_by(col(RosterSyncRun.id).desc())).first()
    # The roster in force is the last one applied (a held run applied later than a newer one,
    # as earlier versions allowed, is the one in force).
    applied = session.exec(
        runs.where(RosterSyncRun.status == "applied").order_by(
            col(RosterSyncRun.finished_at).desc(), col(RosterSyncRun.id).desc()
        )
    ).first()
    last_full = session.exec(
        runs.where(RosterSyncRun.status == "applied", RosterSyncRun.mode == "full").order_by(
            col(RosterSyncRun.finished_at).desc(), col(RosterSyncRun.id).desc()
        )
    ).first()
    kind = config.kind if config else (latest.kind if latest else name)
    return DataSourceView(
        name=name,
        kind=kind,
        configured=config is not None,
        last_status=latest.status if latest else None,
        last_attempt_at=latest.started_at if latest else None,
        last_success_at=applied.finished_at if applied else None,
        last_error=latest.error
        if latest and latest.status in ("failed", "held", "superseded")
        else None,
        records=applied.records if applied else None,
        active_students=applied.active_students if applied else None,
        excluded=json.loads(applied.excluded) if applied and applied.excluded else {},
        server_count=applied.server_count if applied else None,
        held=bool(latest and latest.status == "held"),
        last_sync_mode=applied.mode if applied else None,
        last_full_sync_at=last_full.finished_at if last_full else None,
    )
