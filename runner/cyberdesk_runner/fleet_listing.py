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


async def list_fleet(
    client: CyberdeskClient, *, pool_members: bool, previous: Fleet | None = None
) -> FleetListing:
    """Every desktop, and (with `pool_members`, when a job targets a pool) which pools each is in.

    With `previous` (the fleet of the last listing), a desktop that did not change is the very object it was
    there, and when none changed (the usual refresh) the fleet is `previous` itself: what callers worked out
    from it stays valid (`is`), and a refresh of 10,000 desktops keeps no new objects.

    Raises CyberdeskError when a page fails.
    """
    pools, pools_of = await _pools(client, pool_members)
    # Desktops in the same pools share one pair of sets: 10,000 desktops in a few pools hold a few sets.
    pool_sets: dict[tuple[tuple[str, str], ...], tuple[frozenset[str], frozenset[str]]] = {}
    desktops: dict[str, Desktop] = {}
    changed = previous is None
    async for machine in client.machines.iter():
        machine_id = str(machine.id)
        member_of = pools_of.get(machine_id, ())
        if member_of not in pool_sets:
            pool_sets[member_of] = (frozenset(i for i, _ in member_of), frozenset(n for _, n in member_of))
        pool_ids, pool_names = pool_sets[member_of]
        params = machine.machine_parameters if isinstance(machine.machine_parameters, dict) else {}
        desktop = Desktop(
            id=machine_id,
            name=machine.name if isinstance(machine.name, str) else None,
            params=params,
            pool_ids=pool_ids,
            pool_names=pool_names,
            connected=str(machine.status) == "connected",
        )
        same = previous.get(machine_id) if previous is not None else None
        if same is not None and same == desktop:
            desktop = same
        else:
            changed = True
        desktops[desktop.id] = desktop
    if previous is not None and not changed and len(desktops) == len(previous):
        return FleetListing(previous, pools)
    return FleetListing(Fleet(desktops.values()), pools)


async def _pools(
    client: CyberdeskClient, with_members: bool
) -> tuple[dict[str, str | None], dict[str, tuple[tuple[str, str], ...]]]:
    """Every pool (id -> name), and machine id -> [(pool id, pool name)] from each pool's machines
    (few pools, many desktops)."""
    pools: dict[str, str | None] = {}
    members: dict[str, tuple[tuple[str, str], ...]] = {}
    async for pool in client.pools.iter():
        pools[str(pool.id)] = pool.name if isinstance(pool.name, str) else None
        if not with_members:
            continue
        machine_ids = await _members(client, pool.id)
        entry = (str(pool.id), pool.name)  # one tuple per pool, shared by its 10,000 desktops
        for machine_id in machine_ids:
            members[machine_id] = (*members.get(machine_id, ()), entry)
    return pools, members


async def _members(client: CyberdeskClient, pool_id: UUID) -> list[str]:
    """The ids of a pool's machines. The answer holds every member whole (a 10,000-desktop pool: 5 MB of JSON);
    only their ids are parsed out of it (`pools.get_machine_ids`)."""
    return (await client.pools.get_machine_ids(pool_id)).unwrap()
