"""One listing of the API's desktops, with the pools they are in, as a `Fleet` (the daemon's refresh, dry runs)."""

from __future__ import annotations

from uuid import UUID

import attrs

from cyberdesk import CyberdeskClient
from cyberdesk_runner.fleet import Desktop, Fleet

__all__ = ["FleetListing", "list_fleet"]


@attrs.frozen
class FleetListing:
    fleet: Fleet
    #: Every pool, id -> name (None when the API gives none), members or not.
    pools: dict[str, str | None]


async def list_fleet(client: CyberdeskClient, *, pool_members: bool) -> FleetListing:
    """Every desktop, and (with `pool_members`, when a job targets a pool) which pools each is in.

    Raises CyberdeskError when a page fails.
    """
    pools, pools_of = await _pools(client, pool_members)
    # Desktops in the same pools share one pair of sets: 10,000 desktops in a few pools hold a few sets.
    pool_sets: dict[tuple[tuple[str, str], ...], tuple[frozenset[str], frozenset[str]]] = {}
    desktops: list[Desktop] = []
    async for machine in client.machines.iter():
        machine_id = str(machine.id)
        member_of = tuple(pools_of.get(machine_id, ()))
        if member_of not in pool_sets:
            pool_sets[member_of] = (frozenset(i for i, _ in member_of), frozenset(n for _, n in member_of))
        pool_ids, pool_names = pool_sets[member_of]
        params = machine.machine_parameters if isinstance(machine.machine_parameters, dict) else {}
        desktops.append(
            Desktop(
                id=machine_id,
                name=machine.name if isinstance(machine.name, str) else None,
                params=params,
                pool_ids=pool_ids,
                pool_names=pool_names,
                connected=str(machine.status) == "connected",
            )
        )
    return FleetListing(Fleet(desktops), pools)


async def _pools(
    client: CyberdeskClient, with_members: bool
) -> tuple[dict[str, str | None], dict[str, list[tuple[str, str]]]]:
    """Every pool (id -> name), and machine id -> [(pool id, pool name)] from each pool's machines
    (few pools, many desktops)."""
    pools: dict[str, str | None] = {}
    members: dict[str, list[tuple[str, str]]] = {}
    async for pool in client.pools.iter():
        pools[str(pool.id)] = pool.name if isinstance(pool.name, str) else None
        if not with_members:
            continue
        machine_ids = await _members(client, pool.id)
        entry = (str(pool.id), pool.name)  # one tuple per pool, shared by its 10,000 desktops
        for machine_id in machine_ids:
            members.setdefault(machine_id, []).append(entry)
    return pools, members


async def _members(client: CyberdeskClient, pool_id: UUID) -> set[str]:
    """The ids of a pool's machines. The answer holds every member whole (a 10,000-desktop pool: 5 MB of JSON,
    about 20 MB more once parsed); only the ids outlive this call."""
    detail = (await client.pools.get(pool_id, include=["machines"])).unwrap()
    machine_ids = {str(m.id) for m in detail.machines or []}
    machine_ids |= {str(r.id) for r in detail.included or [] if r.type == "machine"}
    return machine_ids
